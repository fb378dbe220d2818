/**
 * isola runs fragile or untrusted plug-in code out of harm's way, in a
 * thread or a sandboxed child process, and talks to it over a Unix socket
 * that carries data and file descriptors. It is libcamera's IPA isolation
 * design (IPC unix socket, IPC pipe, pidfd-based process management, IPA
 * proxies) for Deno.
 *
 * Requires Linux (kernel >= 5.4, glibc >= 2.34) and `--allow-ffi`, which is
 * full trust for the *parent*: isolation of the child comes from the
 * kernel.
 *
 * @example Passing a buffer by descriptor
 * ```ts
 * import { createMemfd, IpcUnixSocket, readFd } from "@isola/isola";
 *
 * using parent = new IpcUnixSocket();
 * using child = new IpcUnixSocket();
 * child.bind(parent.create());
 * using buf = createMemfd({ data: new Uint8Array([1, 2, 3]) });
 * parent.send({ fds: [buf] });
 * using msg = child.receive({ timeout: 1000 });
 * console.log(readFd(msg.fds[0])); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 *
 * @module
 */
export {
  IpcClosedError,
  IpcProtocolError,
  type IpcProtocolErrorReason,
  IpcTimeoutError,
  SyscallError,
} from "./src/common/errors.ts";
export { type FdLike, OwnedFd } from "./src/fd/owned_fd.ts";
export {
  createMemfd,
  type CreateMemfdOptions,
  fdSize,
  IMMUTABLE_SEALS,
  isSealed,
  readFd,
  sealFd,
  writeFd,
} from "./src/fd/memfd.ts";
export {
  DEFAULT_SEND_TIMEOUT,
  DEFAULT_SPIN_US,
  INLINE_DATA_MAX,
  IpcErrorEvent,
  IpcMessageEvent,
  IpcPayload,
  type IpcPayloadInit,
  type IpcReceiveOptions,
  type IpcSendOptions,
  IpcUnixSocket,
  type IpcUnixSocketEventMap,
  type IpcUnixSocketOptions,
  type IpcUnixSocketState,
  MAX_FDS_PER_MESSAGE,
} from "./src/ipc/ipc_unix_socket.ts";
// Process
export {
  ISOLATION_LAYERS,
  type IsolationLayer,
  LOG_FILE_ENV,
  Process,
  type ProcessDescription,
  type ProcessEventMap,
  type ProcessExit,
  type ProcessExited,
  ProcessExitEvent,
  type ProcessFilesystem,
  type ProcessIsolation,
  ProcessIsolationError,
  type ProcessIsolationReport,
  type ProcessLimits,
  type ProcessOptions,
  type ProcessSignaled,
  ProcessSpawnError,
  type ProcessSpawnPath,
  type ProcessStderr,
  type ProcessStdio,
  type ProcessTerminateOptions,
  type SignalName,
  STDERR_TAIL_BYTES,
} from "./src/process/process.ts";
export {
  denoCacheDir,
  DenoCacheError,
  type DenoWorkerCommand,
  denoWorkerCommand,
  type DenoWorkerOptions,
  denoWorkerPaths,
} from "./src/process/deno_command.ts";
export {
  IPC_ERROR_CMD,
  IPC_PING_CMD,
  IpcMessage,
  type IpcMessageInit,
} from "./src/pipe/ipc_message.ts";
export {
  type IpcCallHandler,
  type IpcMessageHandler,
  IpcPipeWorker,
  type IpcPipeWorkerHandlers,
} from "./src/pipe/ipc_pipe_worker.ts";
export { IpcCallError } from "./src/pipe/ipc_call_error.ts";
export {
  DEFAULT_CALL_TIMEOUT,
  DEFAULT_RECEIVE_WINDOW,
  type IpcCallOptions,
  type IpcPipeOptions,
  IpcPipeUnixSocket,
} from "./src/pipe/ipc_pipe_unix_socket.ts";
export {
  describeExit,
  IpcPeerGoneError,
  IpcRemoteError,
} from "./src/pipe/pipe_errors.ts";
export {
  IpcPipeDisconnectEvent,
  IpcPipeErrorEvent,
  type IpcPipeEventMap,
  IpcPipeMessageEvent,
} from "./src/pipe/pipe_events.ts";
export {
  type ControlList,
  type ControlValue,
  defineIpaInterface,
  IPA_RESERVED_NAMES,
  type IpaArrayType,
  type IpaContext,
  type IpaEventPayload,
  type IpaEventPayloadInit,
  type IpaImplementation,
  type IpaInterface,
  type IpaInterfaceSpec,
  type IpaLifecycle,
  type IpaMapType,
  type IpaMethods,
  type IpaMethodSpec,
  type IpaOptionalType,
  type IpaParams,
  type IpaParamsInit,
  type IpaResult,
  type IpaResultInit,
  type IpaScalarKind,
  type IpaScalarType,
  type IpaStructType,
  type IpaType,
  type IpaValue,
  type IpaValueInit,
  isIpaInterface,
  T,
} from "./src/ipa/ipa_schema.ts";
export {
  checkIpaModule,
  generateIpaSigningKey,
  type IpaModule,
  IpaModuleError,
  type IpaModuleInfo,
  loadIpaPublicKey,
  signaturePath,
  signIpaModule,
  verifyIpaModule,
} from "./src/ipa/ipa_module.ts";
export {
  IPA_WORKER_ENV,
  IpaCrashEvent,
  IpaErrorEvent,
  IpaEvent,
  IpaPipelineMismatchError,
  type IpaPlacement,
  IpaProxy,
  type IpaProxyEventMap,
  IpaProxyIsolated,
  type IpaProxyOf,
  type IpaProxyOptions,
  IpaProxyThread,
} from "./src/ipa/ipa_proxy.ts";
export { type IpaProxyState, IpaStateError } from "./src/ipa/ipa_state.ts";
export {
  IPA_FORCE_ISOLATION_ENV,
  IPA_MODULE_PATH_ENV,
  IpaManager,
  type IpaManagerOptions,
  type IpaModuleEntry,
} from "./src/ipa/ipa_manager.ts";
export {
  CameraControls,
  CameraIpa,
  type CameraIpaInterface,
  type CameraIpaSpec,
} from "./src/ipa/camera_ipa.ts";
export {
  decodeIpa,
  encodeIpa,
  IpaDecodeError,
  type IpaDecodeErrorReason,
  type IpaEncoded,
} from "./src/ipa/ipa_serializer.ts";
export type {
  IpaMethodFn,
  IpaOptionalKeys,
  IpaRequiredKeys,
  IpaScalarValue,
  IpaSimplify,
  IpaTypeBuilders,
} from "./src/ipa/ipa_schema.ts";
export { TypedEventTarget } from "./src/common/typed_event_target.ts";
