// Serves an IPA module over an IPC pipe: in a child process
// (ipa_proxy_worker.ts) or in a Worker thread (_ipa_thread_worker.ts).
import { checkIpaModule, IpaModuleError } from "./ipa_module.ts";
import type { IpaInterfaceSpec, IpaMethodSpec } from "./ipa_schema.ts";
import { decodeIpa, encodeIpa, encodeIpaBorrowed } from "./ipa_serializer.ts";
import type { IpcMessage, IpcMessageInit } from "../pipe/ipc_message.ts";
import {
  afterNextReply,
  borrowCallData,
  type IpcPipeWorker,
  turnNow,
} from "../pipe/ipc_pipe_worker.ts";
import { prepareSpares, sparesWanted } from "./_ipa_flat_codec.ts";
import { OwnedFd } from "../fd/owned_fd.ts";
import {
  CMD_INIT,
  CMD_WARMUP,
  CMD_WARMUP_FLAT,
  ERROR_PIPELINE_MISMATCH,
  type InitReply,
  type InitRequest,
  json,
  WARMUP_FLAT_METHOD,
  WARMUP_METHOD,
} from "./_ipa_protocol.ts";
import { IpcCallError } from "../pipe/ipc_call_error.ts";
import { trace, TRACE_ON } from "../common/_trace.ts";
import { WARM_MIN_PERIOD_MS } from "../pipe/_cadence_warmer.ts";

/** Trace key of the host's own hops (the pipe's are keyed by cookie). */
const TRACE_KEY_HOST = -2;

type Impl = Record<string, (params: unknown) => unknown>;

/** A method as the host runs it: made once, nothing built per call. */
interface HostMethod {
  readonly def: IpaMethodSpec;
  /** `Interface.method`, for errors. */
  readonly method: string;
  run(params: unknown): unknown;
  /** A built-in warm-up command. */
  readonly warmUp?: boolean;
}

/**
 * The warm-up commands run as methods that answer their parameters, so
 * that a warm-up call (at start, and the proxy's keepWarm before each
 * frame) runs the host's method path, not a side road of its own.
 */
const WARM_UP: Readonly<Record<number, HostMethod>> = Object.freeze({
  [CMD_WARMUP]: {
    def: WARMUP_METHOD,
    method: "warm-up",
    run: (p) => p,
    warmUp: true,
  },
  [CMD_WARMUP_FLAT]: {
    def: WARMUP_FLAT_METHOD,
    method: "warm-up",
    run: (p) => p,
    warmUp: true,
  },
});

export async function serveIpa(worker: IpcPipeWorker): Promise<void> {
  let iface: IpaInterfaceSpec | undefined;
  let methodNames: string[] = [];
  /** The interface's methods by command - 1 (empty until init). */
  let methods: HostMethod[] = [];
  /** When the last warm-up call came. */
  let lastWarmUp = -Infinity;

  const init = async (req: InitRequest): Promise<InitReply> => {
    let ns: unknown;
    try {
      ns = await import(req.module);
    } catch (e) {
      throw new IpaModuleError(
        req.module,
        `failed to load: ${e instanceof Error ? e.message : e}`,
      );
    }
    const mod = checkIpaModule(ns, req.module);
    const info = mod.ipaModuleInfo;
    if (
      req.pipelineName !== undefined && info.pipelineName !== req.pipelineName
    ) {
      throw new IpcCallError(ERROR_PIPELINE_MISMATCH, info.pipelineName);
    }
    if (info.apiVersion !== req.interface.version) {
      throw new IpaModuleError(
        req.module,
        `implements ${req.interface.name} version ${info.apiVersion}, not ${req.interface.version}`,
      );
    }
    iface = req.interface;
    methodNames = Object.keys(iface.methods);
    const eventNames = Object.keys(iface.events);
    const context = {
      emit(event: string, payload: unknown) {
        const i = eventNames.indexOf(event);
        if (i < 0) {
          throw new TypeError(
            `Cannot emit ${event}: not an event of ${iface!.name}`,
          );
        }
        // Borrowed bytes: emit() copies them into the frame at once.
        const enc = encodeIpaBorrowed(
          iface!.events[event],
          payload,
          "payload",
          `${iface!.name}.${event}`,
        );
        worker.emit({ cmd: i + 1, data: enc.data, fds: enc.fds });
        // Handed over, as for results (IpcPipeWorker closes those).
        for (const fd of enc.fds) if (fd instanceof OwnedFd) fd.close();
      },
    };
    let made: unknown;
    try {
      made = mod.createIpa(context as never);
    } catch (e) {
      throw new IpaModuleError(
        req.module,
        `failed in createIpa: ${e instanceof Error ? e.message : e}`,
      );
    }
    const missing = methodNames.filter((m) =>
      typeof (made as Impl | null)?.[m] !== "function"
    );
    if (missing.length > 0) {
      throw new IpaModuleError(
        req.module,
        `does not implement ${missing.join(", ")} of ${iface.name}`,
      );
    }
    const impl = made as Impl;
    const name = iface.name;
    methods = methodNames.map((m) => ({
      def: iface!.methods[m],
      method: `${name}.${m}`,
      run: (params: unknown) => impl[m](params),
    }));
    return { info: { ...info } };
  };

  // Synchronous unless the method returns a Promise: a sync reply then
  // leaves the worker's loop without a Promise turn.
  const invoke = (
    msg: IpcMessage,
    m: HostMethod | undefined,
  ): IpcMessageInit | Promise<IpcMessageInit> => {
    if (m === undefined) {
      for (const fd of msg.ownedFds) fd.close();
      throw new Error(`No IPA method ${msg.cmd}`);
    }
    const { def, method } = m;
    // The IPA owns them now (the message no longer closes them).
    const owned = msg.ownedFds;
    const fds = owned.length === 0
      ? owned
      : owned.map((fd) => new OwnedFd(fd.release()));
    if (TRACE_ON) trace("host.invoke", TRACE_KEY_HOST);
    const params = decodeIpa(def.params, msg.data, fds, "params", method);
    // The arrays the next call's bytes will take, made once the reply is
    // out (see _ipa_flat_codec.ts).
    if (sparesWanted()) afterNextReply(worker, prepareSpares);
    if (TRACE_ON) trace("host.decoded", TRACE_KEY_HOST);
    // The caller sees this text in its IpcRemoteError: name the method.
    const threw = (e: unknown): never => {
      throw new Error(
        `${method} threw ${e instanceof Error ? `${e.name}: ${e.message}` : e}`,
        { cause: e },
      );
    };
    const finish = (result: unknown, own = false): IpcMessageInit => {
      if (TRACE_ON) trace("host.ran", TRACE_KEY_HOST);
      if (def.result === undefined) return { cmd: msg.cmd };
      // Borrowed bytes when the worker copies them into its reply at once
      // (a method that returned); bytes of their own after a Promise, as
      // the worker copies them a job later and an encode in between (an
      // event the IPA emits, say) would overwrite the borrowed ones.
      const enc = own
        ? encodeIpa(def.result, result, "result", method)
        : encodeIpaBorrowed(def.result, result, "result", method);
      if (TRACE_ON) trace("host.encoded", TRACE_KEY_HOST);
      return { cmd: msg.cmd, data: enc.data, fds: enc.fds };
    };
    let result;
    try {
      result = m.run(params);
    } catch (e) {
      threw(e);
    }
    return result instanceof Promise
      ? result.then((r) => finish(r, true), threw)
      : finish(result);
  };

  // Messages are decoded before anything else runs on this thread (a
  // method's nested sync call included), so their bytes may be borrowed.
  borrowCallData(worker);
  await worker.serve({
    onCall(msg) {
      const m = methods[msg.cmd - 1] ?? WARM_UP[msg.cmd];
      if (m?.warmUp) {
        // One after a gap is the proxy's keepWarm, a frame's call ~3 ms
        // away (those at start come back to back).
        const now = performance.now();
        if (now - lastWarmUp > WARM_MIN_PERIOD_MS) turnNow(worker);
        lastWarmUp = now;
      }
      if (m !== undefined) return invoke(msg, m);
      if (msg.cmd === CMD_INIT) {
        return init(json.decode<InitRequest>(msg.data)).then((reply) => ({
          cmd: CMD_INIT,
          data: json.encode(reply),
        }));
      }
      return invoke(msg, undefined);
    },
    async onMessage(msg) {
      try {
        await invoke(msg, methods[msg.cmd - 1]);
      } catch (e) {
        // An async method has nobody to throw to: say it on stderr, which
        // the owner captures for crash reports.
        const name = methodNames[msg.cmd - 1] ?? `command ${msg.cmd}`;
        console.error(`isola IPA: async method ${name} failed:`, e);
      }
    },
  });
}
