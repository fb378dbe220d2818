/**
 * IPA proxies: an IPA module behind the methods of its interface, in a
 * Worker thread of this process ({@linkcode IpaProxyThread}) or in an
 * isolated child process ({@linkcode IpaProxyIsolated}). Both speak the
 * same protocol over an {@linkcode IpcPipeUnixSocket}, encode every value
 * with the same serializer, and keep the same state rules, so they behave
 * the same (one test suite runs against both).
 *
 * @module
 */
import { shutdown, SOCK } from "../../ffi/socket.ts";
import { environStrings } from "../../ffi/spawn.ts";
import { close as closeFd } from "../../ffi/unistd.ts";
import { IpcRemoteError } from "../pipe/pipe_errors.ts";
import { IpcPipeUnixSocket } from "../pipe/ipc_pipe_unix_socket.ts";
import { IpcUnixSocket } from "../ipc/ipc_unix_socket.ts";
import { settleWithin } from "../common/_timeout.ts";
import { IpaModuleError, type IpaModuleInfo } from "./ipa_module.ts";
import type {
  IpaEventPayload,
  IpaInterface,
  IpaInterfaceSpec,
  IpaMethods,
  IpaMethodSpec,
} from "./ipa_schema.ts";
import { decodeIpa, encodeIpa } from "./ipa_serializer.ts";
import { trace, TRACE_ON } from "../common/_trace.ts";

/** Trace key of the proxy's own hops (the pipe's are keyed by cookie). */
const TRACE_KEY_PROXY = -1;
import type { ProcessExit, ProcessIsolation } from "../process/process.ts";
import {
  CMD_INIT,
  CMD_WARMUP,
  DEFAULT_WARMUP_CALLS,
  ERROR_PIPELINE_MISMATCH,
  type InitReply,
  type InitRequest,
  json,
  WARMUP_METHOD,
  WARMUP_VALUE,
} from "./_ipa_protocol.ts";

/** Where an IPA runs. */
export type IpaPlacement = "thread" | "isolated";

/**
 * Where an IPA stands. Events are delivered only while `running`; async
 * methods are refused otherwise.
 */
export type IpaProxyState = "stopped" | "running" | "crashed" | "closed";

/** Options of the proxies' `create()`. */
export interface IpaProxyOptions {
  /** Deadline of sync methods, ms. Default 2000. */
  timeout?: number;
  /**
   * Refuse a module serving another pipeline (used by
   * {@linkcode IpaManager}); the error is {@linkcode IpaPipelineMismatchError}.
   */
  pipelineName?: string;
  /**
   * Sync round trips made at start through the real call path, so that
   * the first frames run optimised code (V8 optimises after a few thousand
   * runs; at 30 calls a second that takes minutes). Default 2000 (tens of
   * ms); 0 skips it.
   */
  warmUp?: number;
  /** Isolated only: namespaces etc. Default `true` (every layer). */
  isolate?: boolean | ProcessIsolation;
  /** Isolated only: run even if isolation is unavailable. */
  allowUnisolated?: boolean;
  /**
   * Isolated only: extra `deno run` flags for the worker process (e.g.
   * `--allow-env`). It always gets `--allow-ffi` (its socket) and
   * `--allow-read` (to load the module); the kernel jail is what isolates
   * it.
   */
  denoFlags?: readonly string[];
  /**
   * Isolated only: environment variables for the worker. It starts from
   * an empty environment plus the few a Deno process needs to find its
   * cache ({@linkcode IPA_WORKER_ENV}); the parent's secrets stay home.
   */
  env?: Readonly<Record<string, string>>;
  /**
   * Isolated only: file access of the worker (Landlock, Linux 5.13+). By
   * default it may read only the Deno executable and the system libraries,
   * the module's directory, isola's own files and the Deno cache, and
   * write nothing; `false` leaves file access unrestricted (the worker
   * keeps the parent's uid for files). Extra paths: `{ read, write }`,
   * added to the defaults.
   */
  filesystem?: false | { read?: readonly string[]; write?: readonly string[] };
}

function dirOf(url: string): string | null {
  return url.startsWith("file:")
    ? new URL(".", url).pathname.replace(/\/$/, "")
    : null;
}

/** The paths an isolated Deno worker needs to read to run `module`. */
function workerReadPaths(
  module: string,
  env: Record<string, string>,
): string[] {
  const cache = env.DENO_DIR ??
    (env.XDG_CACHE_HOME ? `${env.XDG_CACHE_HOME}/deno` : undefined) ??
    (env.HOME ? `${env.HOME}/.cache/deno` : undefined);
  const isola = dirOf(new URL("../../", import.meta.url).href);
  return [
    Deno.execPath(),
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/proc",
    "/dev/urandom",
    "/dev/null",
    ...[cache, isola, dirOf(module)].filter((p): p is string => !!p),
  ];
}

/**
 * The variables an isolated IPA worker inherits from the parent, when set:
 * what `deno` needs to find its module cache and behave; nothing else.
 */
export const IPA_WORKER_ENV: readonly string[] = Object.freeze([
  "PATH",
  "HOME",
  "DENO_DIR",
  "XDG_CACHE_HOME",
  "TMPDIR",
  "LANG",
  "LC_ALL",
  "TZ",
  "NO_COLOR",
  "DENO_NO_UPDATE_CHECK",
]);

function workerEnv(extra: Readonly<Record<string, string>> = {}): Record<
  string,
  string
> {
  const env: Record<string, string> = {};
  // Read through libc: FFI is already full trust, and the parent may not
  // hold --allow-env for these names.
  for (const s of environStrings()) {
    const eq = s.indexOf("=");
    const name = s.slice(0, eq);
    if (eq > 0 && IPA_WORKER_ENV.includes(name)) env[name] = s.slice(eq + 1);
  }
  return { ...env, ...extra };
}

/** The module serves another pipeline than the one asked for. */
export class IpaPipelineMismatchError extends Error {
  /** The module. */
  readonly module: string;
  /** The pipeline it serves. */
  readonly pipelineName: string;

  /**
   * Builds the error.
   *
   * @param module The module.
   * @param pipelineName The pipeline it serves.
   */
  constructor(module: string, pipelineName: string) {
    super(`IPA module ${module} serves pipeline ${pipelineName}`);
    this.name = "IpaPipelineMismatchError";
    this.module = module;
    this.pipelineName = pipelineName;
  }
}

/** An event the IPA emitted (its `type` is the event's name). */
export class IpaEvent<P = unknown> extends Event {
  /** The decoded payload (descriptors in it are owned by the listener). */
  readonly payload: P;

  /**
   * Builds the event.
   *
   * @param name The event's name.
   * @param payload The payload.
   */
  constructor(name: string, payload: P) {
    super(name);
    this.payload = payload;
  }
}

/** The IPA's process died, or its thread failed (type `crash`). */
export class IpaCrashEvent extends Event {
  /** The exit report (isolated), or null (thread). */
  readonly exit: ProcessExit | null;

  /**
   * Builds the event.
   *
   * @param exit The exit report, or null.
   */
  constructor(exit: ProcessExit | null) {
    super("crash");
    this.exit = exit;
  }
}

/** A proxy together with the methods of its interface. */
export type IpaProxyOf<S extends IpaInterfaceSpec> =
  & IpaProxy<S>
  & IpaMethods<S>;

const RESERVED = new Set([
  "close",
  "on",
  "state",
  "info",
  "placement",
  "droppedEvents",
  "addEventListener",
  "removeEventListener",
  "dispatchEvent",
  "interface",
  "pipe",
  "connectModule",
  "warmUp",
  "warmUpOrClose",
  "pid",
]);

/**
 * The part of a proxy that is not the interface's methods: state, events,
 * closing. Make one with {@linkcode IpaProxyThread.create} or
 * {@linkcode IpaProxyIsolated.create}.
 *
 * State rules (libcamera's `IPAProxyThread`, kept by the isolated proxy
 * too, which libcamera's forgets): a successful `start()` makes the IPA
 * `running`; once `stop()` returns it is `stopped`, and no event is
 * delivered after that, even one that was already on its way; async methods
 * are refused unless running.
 */
export class IpaProxy<S extends IpaInterfaceSpec = IpaInterfaceSpec>
  extends EventTarget
  implements AsyncDisposable {
  readonly #iface: IpaInterface<S>;
  readonly #pipe: IpcPipeUnixSocket;
  readonly #placement: IpaPlacement;
  readonly #cleanup: () => Promise<void>;
  #info: IpaModuleInfo | undefined;
  #state: IpaProxyState = "stopped";
  #dropped = 0;
  #closed?: Promise<void>;

  /** Use {@linkcode IpaProxyThread.create} / {@linkcode IpaProxyIsolated.create}. */
  protected constructor(
    iface: IpaInterface<S>,
    pipe: IpcPipeUnixSocket,
    placement: IpaPlacement,
    cleanup: () => Promise<void>,
  ) {
    super();
    this.#iface = iface;
    this.#pipe = pipe;
    this.#placement = placement;
    this.#cleanup = cleanup;
    for (const name of iface.methodNames) {
      if (RESERVED.has(name)) {
        throw new TypeError(
          `Cannot make IPA proxy: method name ${name} is reserved`,
        );
      }
    }
    iface.methodNames.forEach((name, i) => {
      Object.defineProperty(this, name, {
        value: this.#method(name, i + 1, iface.methods[name]),
        enumerable: true,
      });
    });
    pipe.addEventListener("recv", (e) => this.#onEvent(e.message));
    pipe.addEventListener("disconnect", (e) => {
      if (this.#state === "closed") return;
      this.#state = "crashed";
      this.dispatchEvent(new IpaCrashEvent(e.exit));
    });
  }

  /**
   * Loads the module in the peer; closes everything if that fails.
   *
   * @param module The module's URL.
   * @param pipelineName Refuse a module serving another pipeline.
   */
  protected async connectModule(
    module: string,
    pipelineName?: string,
  ): Promise<void> {
    const req: InitRequest = {
      module,
      interface: {
        name: this.#iface.name,
        version: this.#iface.version,
        methods: this.#iface.methods,
        events: this.#iface.events,
      },
      pipelineName,
    };
    try {
      using reply = await this.#pipe.call(
        { cmd: CMD_INIT, data: json.encode(req) },
        { timeout: 30_000 },
      );
      this.#info = json.decode<InitReply>(reply.data).info;
    } catch (e) {
      await this.close();
      if (e instanceof IpcRemoteError) {
        if (e.code === ERROR_PIPELINE_MISMATCH) {
          throw new IpaPipelineMismatchError(module, e.remoteMessage);
        }
        const text = e.remoteMessage;
        throw new IpaModuleError(
          module,
          text.startsWith(`IPA module ${module} `)
            ? text.slice(`IPA module ${module} `.length)
            : `failed: ${text}`,
        );
      }
      throw new IpaModuleError(module, `could not be started: ${e}`, {
        cause: e,
      });
    }
  }

  /**
   * Makes `calls` warm-up round trips through the sync method path (the
   * same closure code as the interface's methods, the same codec, pipe and
   * host paths), so that the first frames run optimised code.
   *
   * @param calls How many.
   */
  protected warmUp(calls: number = DEFAULT_WARMUP_CALLS): void {
    if (calls <= 0) return;
    const call = this.#method("warm-up", CMD_WARMUP, WARMUP_METHOD);
    for (let i = 0; i < calls; i++) call(WARMUP_VALUE);
  }

  /** {@linkcode IpaProxy.warmUp}, closing everything if it fails. */
  protected async warmUpOrClose(calls: number): Promise<void> {
    try {
      this.warmUp(calls);
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** The module's description. */
  get info(): IpaModuleInfo {
    return { ...this.#info! };
  }

  /** The pid of the isolated IPA's process; null for a thread. */
  get pid(): number | null {
    if (this.#placement !== "isolated") return null;
    return this.#pipe.process.pid ?? null;
  }

  /** Where the IPA runs. */
  get placement(): IpaPlacement {
    return this.#placement;
  }

  /** Where the IPA stands. */
  get state(): IpaProxyState {
    return this.#state;
  }

  /** Events dropped because they came while the IPA was not running. */
  get droppedEvents(): number {
    return this.#dropped;
  }

  /** The interface. */
  get interface(): IpaInterface<S> {
    return this.#iface;
  }

  /**
   * Calls `handler` with the payload of each `event` the IPA emits while
   * running.
   *
   * @param event The event's name.
   * @param handler Gets the decoded payload.
   * @returns A function that removes the handler.
   */
  on<E extends keyof S["events"] & string>(
    event: E,
    handler: (payload: IpaEventPayload<S, E>) => void,
  ): () => void {
    const listener = (e: Event) => handler((e as IpaEvent).payload as never);
    this.addEventListener(event, listener);
    return () => this.removeEventListener(event, listener);
  }

  #method(
    name: string,
    cmd: number,
    def: IpaMethodSpec,
  ): (params: unknown) => unknown {
    const action = `Cannot call ${this.#iface.name}.${name}`;
    if (!def.sync) {
      return (params) => {
        if (this.#state !== "running") {
          throw new Error(`${action}: the IPA is ${this.#state}, not running`);
        }
        const enc = encodeIpa(def.params, params ?? {}, "params");
        this.#pipe.sendAsync({ cmd, data: enc.data, fds: enc.fds });
      };
    }
    return (params) => {
      if (this.#state === "closed" || this.#state === "crashed") {
        throw new Error(`${action}: the IPA is ${this.#state}`);
      }
      if (TRACE_ON) trace("ipa.call", TRACE_KEY_PROXY);
      const enc = encodeIpa(def.params, params ?? {}, "params");
      let reply;
      try {
        reply = this.#pipe.sendSync({ cmd, data: enc.data, fds: enc.fds });
        if (TRACE_ON) trace("ipa.replied", TRACE_KEY_PROXY);
      } finally {
        // No event is delivered after stop() returns, even if it fails.
        if (name === "stop") this.#state = "stopped";
      }
      if (name === "start") this.#state = "running";
      if (def.result === undefined) {
        reply[Symbol.dispose]();
        return undefined;
      }
      const result = decodeIpa(def.result, reply.data, reply.ownedFds);
      if (TRACE_ON) trace("ipa.decoded", TRACE_KEY_PROXY);
      return result;
    };
  }

  #onEvent(msg: import("../pipe/ipc_message.ts").IpcMessage): void {
    const name = this.#iface.eventNames[msg.cmd - 1];
    if (name === undefined || this.#state !== "running") {
      this.#dropped++;
      msg[Symbol.dispose]();
      return;
    }
    let payload: unknown;
    try {
      payload = decodeIpa(this.#iface.events[name], msg.data, msg.ownedFds);
    } catch {
      this.#dropped++;
      return;
    }
    this.dispatchEvent(new IpaEvent(name, payload));
  }

  /**
   * Closes the proxy: the IPA is stopped being served, its thread or
   * process ends, pending calls fail. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#state = "closed";
      await this.#pipe.close();
      await this.#cleanup();
    })();
    return this.#closed;
  }

  /** Closes (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function checkWarmUp(n: number | undefined): number {
  const v = n ?? DEFAULT_WARMUP_CALLS;
  if (!Number.isInteger(v) || v < 0) {
    throw new RangeError(`Invalid warmUp: ${v} (must be an integer >= 0)`);
  }
  return v;
}

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module)) return module;
  const base = new URL(`file://${Deno.cwd()}/`);
  return new URL(module, base).href;
}

/**
 * An IPA in a Worker thread of this process (libcamera's
 * `IPAProxyThread`): for trusted modules. Sync methods block the caller
 * until the Worker has run them; events arrive on the caller's event loop.
 *
 * @example
 * ```ts ignore
 * import { CameraIpa, IpaProxyThread } from "@isola/isola";
 *
 * await using ipa = await IpaProxyThread.create(CameraIpa, "./examples/ipa/open_ae_awb.ts");
 * ipa.init({ sensorModel: "imx219" });
 * ```
 */
export class IpaProxyThread<S extends IpaInterfaceSpec = IpaInterfaceSpec>
  extends IpaProxy<S> {
  /**
   * Loads `module` in a new Worker and returns its proxy.
   *
   * @param iface The interface the module implements.
   * @param module Its path or URL.
   * @param options Timeout, pipeline check.
   * @returns The proxy, with the interface's methods.
   * @throws {IpaModuleError} If the module cannot be loaded or used.
   */
  static async create<I extends IpaInterface>(
    iface: I,
    module: string | URL,
    options: IpaProxyOptions = {},
  ): Promise<IpaProxyOf<I>> {
    const warmUp = checkWarmUp(options.warmUp);
    const url = moduleUrl(module);
    const sock = new IpcUnixSocket();
    const peer = sock.create();
    const peerFd = peer.release();
    const worker = new Worker(
      new URL("./_ipa_thread_worker.ts", import.meta.url).href,
      { type: "module", name: `isola-ipa ${url}` },
    );
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      // The Worker's socket end is a descriptor of this process: shut it
      // down (wakes the Worker's pending poll, the pipe sees the hang-up)
      // and close it once the Worker is gone.
      shutdown(peerFd, SOCK.SHUT_RDWR);
      worker.terminate();
      closeFd(peerFd);
    };
    const done = Promise.withResolvers<void>();
    worker.onmessage = () => {
      // Its serve loop ended at the hang-up and closed its socket end.
      ended = true;
      worker.terminate();
      done.resolve();
    };
    worker.onerror = (e) => {
      e.preventDefault();
      end(); // an uncaught error in the IPA: it crashed
      done.resolve();
    };
    worker.postMessage({ fd: peerFd });
    const pipe = new IpcPipeUnixSocket(sock, { timeout: options.timeout });
    const proxy = new IpaProxyThread<I>(
      iface as IpaInterface<I>,
      pipe,
      "thread",
      async () => {
        await settleWithin(done.promise, 2000);
        // A Worker that did not finish in time (an IPA stuck in a loop) is
        // terminated, and its socket end, which it never closed, closed.
        end();
      },
    );
    await proxy.connectModule(url, options.pipelineName);
    await proxy.warmUpOrClose(warmUp);
    return proxy as unknown as IpaProxyOf<I>;
  }
}

/**
 * An IPA in an isolated child process (libcamera's `IPAProxyIsolated`),
 * for untrusted modules: user and network namespaces, no_new_privs, a
 * parent-death signal, by default. If it crashes, pending and later calls
 * fail at once with the exit report and a `crash` event tells the owner.
 *
 * @example
 * ```ts ignore
 * import { CameraIpa, IpaProxyIsolated } from "@isola/isola";
 *
 * await using ipa = await IpaProxyIsolated.create(CameraIpa, "./examples/ipa/vendor_ae_awb.ts");
 * ipa.addEventListener("crash", (e) => console.log("IPA died:", e));
 * ```
 */
export class IpaProxyIsolated<S extends IpaInterfaceSpec = IpaInterfaceSpec>
  extends IpaProxy<S> {
  /**
   * Starts a worker process serving `module` and returns its proxy.
   *
   * @param iface The interface the module implements.
   * @param module Its path or URL.
   * @param options Isolation, timeout, pipeline check, Deno flags.
   * @returns The proxy, with the interface's methods.
   * @throws {IpaModuleError} If the module cannot be loaded or used.
   * @throws {ProcessIsolationError} If isolation is refused.
   */
  static async create<I extends IpaInterface>(
    iface: I,
    module: string | URL,
    options: IpaProxyOptions = {},
  ): Promise<IpaProxyOf<I>> {
    const warmUp = checkWarmUp(options.warmUp);
    const url = moduleUrl(module);
    const host = new URL("./ipa_proxy_worker.ts", import.meta.url);
    const env = workerEnv(options.env);
    const fs = options.filesystem === false ? undefined : {
      read: [...workerReadPaths(url, env), ...(options.filesystem?.read ?? [])],
      write: ["/dev/null", ...(options.filesystem?.write ?? [])],
    };
    const isolate = options.isolate ?? true;
    const pipe = new IpcPipeUnixSocket(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-ffi",
        "--allow-read",
        ...(options.denoFlags ?? []),
        host.protocol === "file:" ? host.pathname : host.href,
      ],
      isolate: isolate === false
        ? false
        : { ...(isolate === true ? {} : isolate), filesystem: fs },
      allowUnisolated: options.allowUnisolated,
      timeout: options.timeout,
      clearEnv: true,
      env,
    });
    const proxy = new IpaProxyIsolated<I>(
      iface as IpaInterface<I>,
      pipe,
      "isolated",
      async () => {},
    );
    await proxy.connectModule(url, options.pipelineName);
    await proxy.warmUpOrClose(warmUp);
    return proxy as unknown as IpaProxyOf<I>;
  }
}
