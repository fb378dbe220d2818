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
import {
  describeExit,
  IpcPeerGoneError,
  IpcRemoteError,
} from "../pipe/pipe_errors.ts";
import {
  DEFAULT_CALL_TIMEOUT,
  type IpcCallOptions,
  IpcPipeUnixSocket,
  sendSyncBorrowed,
} from "../pipe/ipc_pipe_unix_socket.ts";
import type { IpcMessage } from "../pipe/ipc_message.ts";
import { IpcUnixSocket } from "../ipc/ipc_unix_socket.ts";
import { IpcClosedError, IpcTimeoutError } from "../common/errors.ts";
import { TypedEventTarget } from "../common/typed_event_target.ts";
import { settleWithin } from "../common/_timeout.ts";
import { fileDirOf, moduleUrl } from "../common/_file_url.ts";
import { DenoCacheError, denoWorkerCommand } from "../process/deno_command.ts";
import { IpaModuleError, type IpaModuleInfo } from "./ipa_module.ts";
import type {
  IpaEventPayload,
  IpaInterface,
  IpaInterfaceSpec,
  IpaMethods,
  IpaMethodSpec,
} from "./ipa_schema.ts";
import { decodeIpa, encodeIpaBorrowed } from "./ipa_serializer.ts";
import { flatPlan, prepareSpares, sparesWanted } from "./_ipa_flat_codec.ts";
import { type IpaProxyState, IpaStateError } from "./ipa_state.ts";
import { checkProxyArgs } from "./_ipa_options.ts";
import { CadenceWarmer, WARM_LEAD_MS } from "../pipe/_cadence_warmer.ts";
import { crashReportBuffer, readCrashReport } from "./_ipa_thread_crash.ts";
import { trace, TRACE_ON } from "../common/_trace.ts";
import type { ProcessExit, ProcessIsolation } from "../process/process.ts";
import {
  CMD_INIT,
  CMD_WARMUP,
  CMD_WARMUP_FLAT,
  DEFAULT_WARMUP_CALLS,
  ERROR_PIPELINE_MISMATCH,
  type InitReply,
  type InitRequest,
  json,
  WARMUP_FLAT_METHOD,
  WARMUP_FLAT_VALUE,
  WARMUP_METHOD,
  WARMUP_VALUE,
} from "./_ipa_protocol.ts";

/** Where an IPA runs. */
export type IpaPlacement = "thread" | "isolated";

/**
 * Options of the proxies' `create()`. Each is checked: a wrong type is a
 * `TypeError` naming the option.
 */
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
  /**
   * Keep sync calls that come at a steady cadence (a camera's frames)
   * fast: while they do, the proxy makes one warm-up round trip from a
   * timer 3 ms before the next call is due, so that call finds both sides'
   * code and pages warm (at 30 fps here: ~240 -> ~75 µs p50; see
   * docs/cadence.md). It costs one small round trip per frame, off the
   * frame's path, and stops when the calls stop. Default `true`.
   */
  keepWarm?: boolean;
  /** Isolated only: namespaces etc. Default `true` (every layer). */
  isolate?: boolean | ProcessIsolation;
  /** Isolated only: run even if isolation is unavailable. */
  allowUnisolated?: boolean;
  /**
   * Isolated only: extra `deno run` flags for the worker process (e.g.
   * `--allow-env`). It always gets `--allow-ffi` (its socket),
   * `--allow-read` (to load the module), this process's config and lock
   * file, and `--cached-only --allow-import`: the module and its imports
   * are fetched into the Deno cache before (see
   * {@linkcode denoWorkerCommand}); the kernel jail is what isolates it.
   */
  denoFlags?: readonly string[];
  /**
   * Isolated only: environment variables for the worker. It starts from
   * an empty environment plus the few a Deno process needs to find its
   * cache ({@linkcode IPA_WORKER_ENV}); the parent's secrets stay home.
   */
  env?: Readonly<Record<string, string>>;
  /**
   * Isolated only: the files of the worker. Its jail shows (read-only)
   * only the Deno executable and the system libraries, the module's
   * directory, isola's own files and the Deno cache, and it writes
   * nothing but its private `/tmp`; Landlock enforces the same a second
   * time. Extra paths: `{ read, write }`, added to the defaults; `false`
   * turns Landlock off (the jail's view stays).
   */
  filesystem?: false | { read?: readonly string[]; write?: readonly string[] };
  /**
   * Isolated only: the config file (deno.json, with its import map) the
   * worker uses; `false` for none. Default: this process's, so the
   * module's bare specifiers resolve as they do here.
   */
  config?: string | false;
  /**
   * Isolated only: the lock file the worker checks; `false` for none.
   * Default: this process's.
   */
  lock?: string | false;
}

/**
 * One warm-up call in this many passes no options, as a method call does
 * (the rest use a warm-up deadline of their own).
 */
const WARMUP_FRAME_EVERY = 8;

/** Kinds of warm call (see IpaProxy.keepWarm()). */
const WARM_FLAT = 0;
const WARM_GENERAL = 1;

/** Trace key of the proxy's own hops (the pipe's are keyed by cookie). */
const TRACE_KEY_PROXY = -1;

/** The program an isolated IPA worker runs (its static imports only). */
const IPA_WORKER_ENTRY = new URL("./ipa_proxy_worker.ts", import.meta.url);

/** isola's own directory when it is loaded from files, else null. */
const ISOLA_DIR = fileDirOf(new URL("../../", import.meta.url));

/**
 * The paths an isolated Deno worker needs to read: the system libraries,
 * isola's own files, and `deno` (what `denoWorkerPaths()` lists:
 * the Deno executable and cache, config, lock file, import-map targets,
 * the module's directory).
 */
function workerReadPaths(deno: readonly string[]): string[] {
  return [
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/proc",
    "/dev/urandom",
    "/dev/null",
    ...(ISOLA_DIR === null ? [] : [ISOLA_DIR]),
    ...deno,
  ];
}

/**
 * The variables an isolated IPA worker inherits from the parent, when set:
 * what `deno` needs to find its module cache and behave; nothing else.
 *
 * @example
 * ```ts
 * import { IPA_WORKER_ENV } from "@isola/isola";
 *
 * console.log(IPA_WORKER_ENV.includes("DENO_DIR")); // true
 * ```
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

function workerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  // Read through libc: FFI is already full trust, and the parent may not
  // hold --allow-env for these names.
  for (const s of environStrings()) {
    const eq = s.indexOf("=");
    const name = s.slice(0, eq);
    if (eq > 0 && IPA_WORKER_ENV.includes(name)) env[name] = s.slice(eq + 1);
  }
  return env;
}

/**
 * The module serves another pipeline than the one asked for (the
 * `pipelineName` option of `create()`).
 *
 * @example
 * ```ts
 * import {
 *   CameraIpa,
 *   IpaPipelineMismatchError,
 *   IpaProxyThread,
 * } from "@isola/isola";
 *
 * try {
 *   await IpaProxyThread.create(CameraIpa, "./examples/ipa/open_ae_awb.ts", {
 *     pipelineName: "vendor",
 *   });
 * } catch (e) {
 *   console.log((e as IpaPipelineMismatchError).pipelineName); // "simple"
 * }
 * ```
 */
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

/**
 * An event the IPA emitted; its `type` is the event's name and `message`
 * its decoded payload (descriptors in it are owned by the listener, typed
 * `OwnedFd`).
 *
 * @example
 * ```ts
 * import { IpaEvent } from "@isola/isola";
 *
 * const e = new IpaEvent("poked", { count: 1 });
 * console.log(e.type, e.message.count); // poked 1
 * ```
 */
export class IpaEvent<P = unknown> extends Event {
  /** The decoded payload. */
  readonly message: P;

  /**
   * Builds the event.
   *
   * @param name The event's name.
   * @param message The decoded payload.
   */
  constructor(name: string, message: P) {
    super(name);
    this.message = message;
  }
}

/**
 * The IPA's process died, or its thread failed (type `crash`). It comes
 * after every pending call has failed; the proxy is `crashed`.
 *
 * @example
 * ```ts
 * import { IpaCrashEvent } from "@isola/isola";
 *
 * const e = new IpaCrashEvent(null, new Error("Uncaught Error: boom"));
 * console.log(e.type, e.error?.message); // crash Uncaught Error: boom
 * ```
 */
export class IpaCrashEvent extends Event {
  /** The exit report of an isolated IPA's process; null for a thread. */
  readonly exit: ProcessExit | null;
  /** Why a thread IPA's Worker died (its uncaught error); else null. */
  readonly error: Error | null;

  /**
   * Builds the event.
   *
   * @param exit The exit report, or null.
   * @param error The thread's uncaught error, or null.
   */
  constructor(exit: ProcessExit | null, error: Error | null = null) {
    super("crash");
    this.exit = exit;
    this.error = error;
  }
}

/**
 * The IPA sent something that could not be delivered: an event whose
 * payload does not decode (an {@linkcode IpaDecodeError}, its descriptors
 * closed), an unknown event, or a malformed message. It was dropped and
 * counted in `droppedEvents`; delivery goes on.
 *
 * @example
 * ```ts
 * import { IpaErrorEvent } from "@isola/isola";
 *
 * const e = new IpaErrorEvent(new Error("bad payload"));
 * console.log(e.type, e.error.message); // error bad payload
 * ```
 */
export class IpaErrorEvent extends Event {
  /** What was wrong. */
  readonly error: Error;

  /**
   * Builds the event.
   *
   * @param error What was wrong.
   */
  constructor(error: Error) {
    super("error");
    this.error = error;
  }
}

/**
 * The events of a proxy for interface `S`: each of the interface's events
 * (an {@linkcode IpaEvent} with its typed payload), `crash` and `error`.
 */
export type IpaProxyEventMap<S extends IpaInterfaceSpec> =
  & { [E in keyof S["events"] & string]: IpaEvent<IpaEventPayload<S, E>> }
  & {
    /** The IPA died. */
    crash: IpaCrashEvent;
    /** Something the IPA sent was dropped. */
    error: IpaErrorEvent;
  };

/** A proxy together with the methods of its interface. */
export type IpaProxyOf<S extends IpaInterfaceSpec> =
  & IpaProxy<S>
  & IpaMethods<S>;

/** What a proxy's subclass gives it besides the pipe. */
interface ProxyHooks {
  /** Ends the thread or process once the pipe is closed. */
  cleanup(): Promise<void>;
  /** Why the IPA's thread died, if it did (thread proxies only). */
  threadError?(): Error | null;
}

/**
 * The part of a proxy that is not the interface's methods: state, events,
 * closing. Make one with {@linkcode IpaProxyThread.create} or
 * {@linkcode IpaProxyIsolated.create}.
 *
 * State rules, from the interface's `lifecycle` (libcamera's
 * `IPAProxyThread`, kept by the isolated proxy too, which libcamera's
 * forgets): with `{ start, stop }`, a successful `start` call makes the IPA
 * `running`; once `stop` returns it is `stopped`, and no event is delivered
 * after that, even one that was already on its way; async methods are
 * refused unless running ({@linkcode IpaStateError}). An
 * `"always-running"` IPA is `running` from creation. A dead IPA is
 * `crashed`: calls fail with `IpcPeerGoneError`, then a `crash` event
 * follows.
 *
 * Events follow one naming scheme across isola: the field is named after
 * what the event carries: `.message` (what the peer sent: here the decoded
 * payload), `.exit` (an exit report), `.error` (an `Error`).
 *
 * @example States and typed events
 * ```ts
 * import { CameraIpa, IpaProxyThread, IpaStateError } from "@isola/isola";
 *
 * await using ipa = await IpaProxyThread.create(
 *   CameraIpa,
 *   "./examples/ipa/open_ae_awb.ts",
 * );
 * ipa.addEventListener("crash", (e) => console.error("IPA died:", e.error));
 * ipa.addEventListener("metadataReady", (e) => console.log(e.message.frame));
 * try {
 *   ipa.queueRequest({ frame: 1, controls: new Map() });
 * } catch (e) {
 *   console.log((e as IpaStateError).state); // "stopped": start() first
 * }
 * ipa.start();
 * console.log(ipa.state); // "running"
 * ipa.stop();
 * ```
 */
export class IpaProxy<S extends IpaInterfaceSpec = IpaInterfaceSpec>
  extends TypedEventTarget<IpaProxyEventMap<S>>
  implements AsyncDisposable {
  readonly #iface: IpaInterface<S>;
  readonly #pipe: IpcPipeUnixSocket;
  readonly #placement: IpaPlacement;
  readonly #hooks: ProxyHooks;
  #info: IpaModuleInfo | undefined;
  #state: IpaProxyState;
  #crashReported = false;
  #dropped = 0;
  #closed?: Promise<void>;
  /** Warms the sync path before each expected call (null: off). */
  #warmer: CadenceWarmer | null = null;

  /** Use {@linkcode IpaProxyThread.create} / {@linkcode IpaProxyIsolated.create}. */
  protected constructor(
    iface: IpaInterface<S>,
    pipe: IpcPipeUnixSocket,
    placement: IpaPlacement,
    hooks: ProxyHooks,
  ) {
    super();
    this.#iface = iface;
    this.#pipe = pipe;
    this.#placement = placement;
    this.#hooks = hooks;
    this.#state = iface.lifecycle === "always-running" ? "running" : "stopped";
    iface.methodNames.forEach((name, i) => {
      Object.defineProperty(this, name, {
        value: this.#method(name, i + 1),
        enumerable: true,
      });
    });
    pipe.addEventListener("recv", (e) => this.#onEvent(e.message));
    pipe.addEventListener("error", (e) => {
      this.#dropped++;
      this.dispatchEvent(new IpaErrorEvent(e.error));
    });
    pipe.addEventListener("disconnect", (e) => {
      this.#warmer?.close(); // nothing left to warm
      if (this.#state === "closed" || this.#crashReported) return;
      this.#state = "crashed";
      this.#crashReported = true;
      this.dispatchEvent(
        new IpaCrashEvent(e.exit, this.#hooks.threadError?.() ?? null),
      );
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
        lifecycle: this.#iface.lifecycle,
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
      throw new IpaModuleError(
        module,
        `could not be started: ${this.#whyGone(e)}`,
        {
          cause: e,
        },
      );
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
    // Not a frame: a warm-up call under load may outlast a frame deadline.
    const options = { timeout: DEFAULT_CALL_TIMEOUT };
    // Both codecs (flat structs, the general walker), and now and then
    // with the options a method call passes (none), so that V8 has type
    // feedback for every branch a frame takes: a branch without any is
    // compiled as a deoptimisation, which the first frames would hit.
    const general = this.#method("warm-up", CMD_WARMUP, WARMUP_METHOD, options);
    const flat = this.#method(
      "warm-up",
      CMD_WARMUP_FLAT,
      WARMUP_FLAT_METHOD,
      options,
    );
    const asFrame = this.#method(
      "warm-up",
      CMD_WARMUP_FLAT,
      WARMUP_FLAT_METHOD,
    );
    for (let i = 0; i < calls; i++) {
      if (i % WARMUP_FRAME_EVERY === WARMUP_FRAME_EVERY - 1) {
        try {
          asFrame(WARMUP_FLAT_VALUE);
        } catch (e) {
          // Under the proxy's own deadline, which may be a frame's: a late
          // reply is dropped by the pipe, and warming goes on.
          if (!(e instanceof IpcTimeoutError)) throw e;
        }
      } else if (i % 2 === 0) flat(WARMUP_FLAT_VALUE);
      else general(WARMUP_VALUE);
    }
  }

  /**
   * Starts keeping the sync path warm between calls that come at a steady
   * cadence (option `keepWarm`): see src/pipe/_cadence_warmer.ts.
   */
  protected keepWarm(): void {
    if (this.#warmer !== null) return;
    // A warm call waits no longer than the lead it has over the next
    // frame: a busy IPA costs a frame at most that, then a back-off. It
    // takes the codec of the last real call: flat structs, or the general
    // walker (a method with an array, a map, a nested struct...).
    const options = { timeout: WARM_LEAD_MS };
    const flat = this.#method(
      "warm-up",
      CMD_WARMUP_FLAT,
      WARMUP_FLAT_METHOD,
      options,
      false,
    );
    const general = this.#method(
      "warm-up",
      CMD_WARMUP,
      WARMUP_METHOD,
      options,
      false,
    );
    this.#warmer = new CadenceWarmer((kind) => {
      if (kind === WARM_GENERAL) general(WARMUP_VALUE);
      else flat(WARMUP_FLAT_VALUE);
    });
  }

  /** Warm calls made so far by the `keepWarm` timer (for tests). */
  protected get warmCalls(): number {
    return this.#warmer?.warmCalls ?? 0;
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
    const listener = (e: Event) => handler((e as IpaEvent).message as never);
    this.addEventListener(event, listener);
    return () => this.removeEventListener(event, listener);
  }

  /** Why the IPA could not be started, once the pipe is closed. */
  #whyGone(e: unknown): string {
    if (!(e instanceof IpcPeerGoneError)) return String(e);
    const error = this.#hooks.threadError?.();
    if (error) return `its thread failed: ${error.message}`;
    if (this.#placement === "thread") return "its thread ended";
    return `its process ${
      describeExit(e.exit ?? this.#pipe.process.exitStatus ?? null)
    }`;
  }

  /** The error of a call to an IPA that died. */
  #goneError(action: string, exit: ProcessExit | null): IpcPeerGoneError {
    const err = new IpcPeerGoneError(action, exit);
    const error = this.#hooks.threadError?.();
    if (error) {
      err.message = `${action}: the IPA's thread failed: ${error.message}`;
      err.cause = error;
    }
    return err;
  }

  /** Refuses a call the state does not allow. */
  #checkCallable(action: string, sync: boolean): void {
    const state = this.#state;
    if (state === "closed") throw new IpaStateError(action, state);
    if (state === "crashed") {
      throw this.#goneError(
        action,
        this.#placement === "isolated" ? this.#pipe.process.exitStatus : null,
      );
    }
    if (!sync && state !== "running") throw new IpaStateError(action, state);
  }

  /** A pipe error, restated for the IPA method that failed. */
  #callError(e: unknown, action: string): unknown {
    if (e instanceof IpcPeerGoneError) {
      // Crashed from now on, before the `crash` event comes.
      if (this.#state !== "closed") this.#state = "crashed";
      return this.#goneError(action, e.exit);
    }
    if (e instanceof IpcTimeoutError) {
      return new IpcTimeoutError(
        `${action}: no reply within ${e.timeout} ms`,
        e.timeout,
      );
    }
    if (e instanceof IpcClosedError && this.#state === "closed") {
      return new IpaStateError(action, "closed");
    }
    return e;
  }

  #method(
    name: string,
    cmd: number,
    def: IpaMethodSpec = this.#iface.methods[name],
    callOptions?: IpcCallOptions,
    paced = true,
  ): (params: unknown) => unknown {
    const method = `${this.#iface.name}.${name}`;
    const action = `Cannot call ${method} (command ${cmd})`;
    const lifecycle = this.#iface.lifecycle;
    const starts = lifecycle !== "always-running" && lifecycle.start === name;
    const stops = lifecycle !== "always-running" && lifecycle.stop === name;
    if (!def.sync) {
      return (params) => {
        this.#checkCallable(action, false);
        const enc = encodeIpaBorrowed(
          def.params,
          params ?? {},
          "params",
          method,
        );
        try {
          this.#pipe.sendAsync({ cmd, data: enc.data, fds: enc.fds });
        } catch (e) {
          throw this.#callError(e, action);
        }
      };
    }
    // Which warm-up call warms this method's codec (see keepWarm()).
    const warmKind = flatPlan(def.params) !== null &&
        (def.result === undefined || flatPlan(def.result) !== null)
      ? WARM_FLAT
      : WARM_GENERAL;
    return (params) => {
      this.#checkCallable(action, true);
      if (TRACE_ON) trace("ipa.call", TRACE_KEY_PROXY);
      if (paced && this.#warmer !== null) {
        this.#warmer.note(performance.now(), warmKind);
      }
      const enc = encodeIpaBorrowed(
        def.params,
        params ?? {},
        "params",
        method,
      );
      let reply;
      try {
        // The reply's bytes are borrowed: decoded below, before anything
        // else receives on this thread.
        reply = sendSyncBorrowed(
          this.#pipe,
          { cmd, data: enc.data, fds: enc.fds },
          callOptions,
          // The arrays the result's bytes will take, made while the IPA
          // works (see _ipa_flat_codec.ts).
          sparesWanted() ? prepareSpares : undefined,
        );
        if (TRACE_ON) trace("ipa.replied", TRACE_KEY_PROXY);
      } catch (e) {
        throw this.#callError(e, action);
      } finally {
        // No event is delivered after stop() returns, even if it failed.
        if (stops && this.#state === "running") this.#state = "stopped";
      }
      if (starts && this.#state === "stopped") this.#state = "running";
      if (def.result === undefined) {
        reply[Symbol.dispose]();
        return undefined;
      }
      const result = decodeIpa(
        def.result,
        reply.data,
        reply.ownedFds,
        "result",
        method,
      );
      if (TRACE_ON) trace("ipa.decoded", TRACE_KEY_PROXY);
      return result;
    };
  }

  #onEvent(msg: IpcMessage): void {
    const name = this.#iface.eventNames[msg.cmd - 1];
    if (name === undefined || this.#state !== "running") {
      this.#dropped++;
      msg[Symbol.dispose]();
      if (name === undefined) {
        this.dispatchEvent(
          new IpaErrorEvent(
            new RangeError(
              `Cannot deliver IPA event: ${this.#iface.name} has no event ${msg.cmd}`,
            ),
          ),
        );
      }
      return;
    }
    let payload: unknown;
    try {
      payload = decodeIpa(
        this.#iface.events[name],
        msg.data,
        msg.ownedFds,
        "payload",
        `${this.#iface.name}.${name}`,
      );
    } catch (e) {
      this.#dropped++;
      this.dispatchEvent(new IpaErrorEvent(e as Error));
      return;
    }
    this.dispatchEvent(new IpaEvent(name, payload) as Event);
  }

  /**
   * Closes the proxy: the IPA is stopped being served, its thread or
   * process ends, pending calls fail. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#state = "closed";
      this.#warmer?.close();
      await this.#pipe.close();
      await this.#hooks.cleanup();
    })();
    return this.#closed;
  }

  /** Closes (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * An IPA in a Worker thread of this process (libcamera's
 * `IPAProxyThread`): for trusted modules. Sync methods block the caller
 * until the Worker has run them; events arrive on the caller's event loop.
 *
 * If the module throws an uncaught error (or leaves a rejection
 * unhandled), its Worker dies: a pending sync call fails at once with
 * `IpcPeerGoneError` naming the error (the Worker ends its side of the
 * socket before dying, so an owner blocked in the call sees it), and a
 * `crash` event with the error follows.
 *
 * @example
 * ```ts
 * import { CameraIpa, IpaProxyThread } from "@isola/isola";
 *
 * await using ipa = await IpaProxyThread.create(
 *   CameraIpa,
 *   "./examples/ipa/open_ae_awb.ts",
 * );
 * const { controls } = ipa.init({ sensorModel: "imx219" });
 * console.log(ipa.placement, controls.size); // thread 2
 * ```
 */
export class IpaProxyThread<S extends IpaInterfaceSpec = IpaInterfaceSpec>
  extends IpaProxy<S> {
  /**
   * Loads `module` in a new Worker and returns its proxy.
   *
   * @param iface The interface the module implements.
   * @param module Its path or URL.
   * @param options Timeout, pipeline check (the isolated-only options are
   *   checked and ignored).
   * @returns The proxy, with the interface's methods.
   * @throws {IpaModuleError} If the module cannot be loaded or used, or its
   *   thread dies while starting (the message says why).
   * @throws {TypeError} If `iface` was not made by `defineIpaInterface`,
   *   `module` is not a string or URL, or an option has the wrong type.
   */
  static async create<I extends IpaInterface>(
    iface: I,
    module: string | URL,
    options: IpaProxyOptions = {},
  ): Promise<IpaProxyOf<I>> {
    checkProxyArgs(iface, module, options, "Cannot create IpaProxyThread");
    const warmUp = options.warmUp ?? DEFAULT_WARMUP_CALLS;
    const url = moduleUrl(module);
    const crashReport = crashReportBuffer();
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
    worker.postMessage({ fd: peerFd, crashReport });
    const pipe = new IpcPipeUnixSocket(sock, { timeout: options.timeout });
    const proxy = new IpaProxyThread<I>(
      iface as IpaInterface<I>,
      pipe,
      "thread",
      {
        threadError: () => {
          const text = readCrashReport(crashReport);
          return text === null ? null : new Error(text);
        },
        cleanup: async () => {
          // A crashed Worker will not finish its loop: do not wait for it.
          if (readCrashReport(crashReport) === null) {
            await settleWithin(done.promise, 2000);
          }
          // A Worker that did not finish in time (an IPA stuck in a loop) is
          // terminated, and its socket end, which it never closed, closed.
          end();
        },
      },
    );
    await proxy.connectModule(url, options.pipelineName);
    await proxy.warmUpOrClose(warmUp);
    if (options.keepWarm ?? true) proxy.keepWarm();
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
 * ```ts
 * import { CameraIpa, IpaProxyIsolated } from "@isola/isola";
 *
 * await using ipa = await IpaProxyIsolated.create(
 *   CameraIpa,
 *   "./examples/ipa/vendor_ae_awb.ts",
 * );
 * ipa.addEventListener("crash", (e) => console.log("IPA died:", e.exit));
 * ipa.init({ sensorModel: "imx219" });
 * console.log(ipa.placement, ipa.pid !== null); // isolated true
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
   * @throws {IpaModuleError} If the module cannot be loaded or used, or its
   *   process dies while starting (the message has its exit status and the
   *   end of its stderr).
   * @throws {ProcessIsolationError} If isolation is refused.
   * @throws {TypeError} If `iface` was not made by `defineIpaInterface`,
   *   `module` is not a string or URL, or an option has the wrong type.
   */
  static async create<I extends IpaInterface>(
    iface: I,
    module: string | URL,
    options: IpaProxyOptions = {},
  ): Promise<IpaProxyOf<I>> {
    checkProxyArgs(iface, module, options, "Cannot create IpaProxyIsolated");
    const warmUp = options.warmUp ?? DEFAULT_WARMUP_CALLS;
    const url = moduleUrl(module);
    // Both the worker entry and the module are fetched into the Deno cache
    // first: the child has no network (and an entry served over HTTP is
    // not in this process's module graph).
    let cmd;
    try {
      cmd = await denoWorkerCommand(IPA_WORKER_ENTRY, {
        config: options.config,
        lock: options.lock,
        modules: [url],
        flags: ["--allow-ffi", "--allow-read", ...(options.denoFlags ?? [])],
      });
    } catch (e) {
      if (!(e instanceof DenoCacheError)) throw e;
      throw new IpaModuleError(url, `could not be loaded: ${e.message}`, {
        cause: e,
      });
    }
    const env = { ...workerEnv(), ...cmd.env, ...options.env };
    // The worker's view of the files (and its Landlock rules unless
    // `filesystem: false`): what Deno needs to run the module, no more.
    const extra = options.filesystem === false ? {} : options.filesystem;
    const fs = {
      read: [...workerReadPaths(cmd.readPaths), ...(extra?.read ?? [])],
      write: ["/dev/null", ...(extra?.write ?? [])],
    };
    const isolate = options.isolate ?? true;
    const pipe = new IpcPipeUnixSocket(cmd.path, {
      args: cmd.args,
      isolate: isolate === false ? false : {
        ...(isolate === true ? {} : isolate),
        filesystem: fs,
        ...(options.filesystem === false ? { landlock: false } : {}),
      },
      allowUnisolated: options.allowUnisolated,
      timeout: options.timeout,
      clearEnv: true,
      env,
    });
    const proxy = new IpaProxyIsolated<I>(
      iface as IpaInterface<I>,
      pipe,
      "isolated",
      { cleanup: async () => {} },
    );
    await proxy.connectModule(url, options.pipelineName);
    await proxy.warmUpOrClose(warmUp);
    if (options.keepWarm ?? true) proxy.keepWarm();
    return proxy as unknown as IpaProxyOf<I>;
  }
}
