/**
 * {@linkcode IpcPipeUnixSocket}: calls, messages and events between this
 * thread and a worker program in a child process (libcamera's
 * `IPCPipeUnixSocket`), with a sync call that cannot hang.
 *
 * @module
 */
import { IpcClosedError, IpcTimeoutError } from "../common/errors.ts";
import {
  encodeMessage,
  IPC_ERROR_CMD,
  IpcMessage,
  type IpcMessageInit,
} from "./ipc_message.ts";
import { DEFAULT_SPIN_US, IpcUnixSocket } from "../ipc/ipc_unix_socket.ts";
import { OwnedFd } from "../fd/owned_fd.ts";
import { TypedEventTarget } from "../common/typed_event_target.ts";
import { checkTimeout } from "../common/_timeout.ts";
import {
  Process,
  type ProcessExit,
  type ProcessIsolation,
  type ProcessStderr,
  type ProcessStdio,
} from "../process/process.ts";
import { Receiver } from "./_receiver.ts";
import {
  decodeItem,
  type ReceivedError,
  type ReceivedMessage,
} from "./_receiver_shared.ts";
import {
  HEADER_SIZE,
  INLINE_MAX,
  isEndOfStream,
  MAX_FDS,
} from "../ipc/_frame.ts";
import { IpcProtocolError } from "../common/errors.ts";
import { E } from "../../ffi/errno.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import { MSG, MsgBuffers } from "../../ffi/socket.ts";
import { close as closeFd } from "../../ffi/unistd.ts";

/** Default deadline of a call: 2 s, the upper end of libcamera's. */
export const DEFAULT_CALL_TIMEOUT = 2000;

/** The peer of a pipe is gone: it closed its socket or its process ended. */
export class IpcPeerGoneError extends IpcClosedError {
  /** How the worker process ended, if known when the error was made. */
  readonly exit: ProcessExit | null;

  /**
   * Builds the error.
   *
   * @param action What could not be done.
   * @param exit The worker's exit report, or null.
   */
  constructor(action: string, exit: ProcessExit | null) {
    super(`${action}: the worker is gone (${describeExit(exit)})`);
    this.name = "IpcPeerGoneError";
    this.exit = exit;
  }
}

/** The worker's handler threw; its message travelled back. */
export class IpcRemoteError extends Error {
  /** The command of the failed call. */
  readonly cmd: number;

  /**
   * Builds the error.
   *
   * @param cmd The command of the failed call.
   * @param message The worker's error message.
   */
  constructor(cmd: number, message: string) {
    super(`Call ${cmd} failed in the worker: ${message}`);
    this.name = "IpcRemoteError";
    this.cmd = cmd;
  }
}

/** A one-line description of an exit report. */
export function describeExit(exit: ProcessExit | null): string {
  if (exit === null) return "exit status not known yet";
  const what = exit.kind === "exited"
    ? `exited with code ${exit.code}`
    : `killed by ${exit.signal}${exit.coreDumped ? " (core dumped)" : ""}`;
  if (!exit.stderr || exit.stderr.length === 0) return what;
  // The line that names the error (Deno prints "error: ..." first), else
  // the last lines.
  const ansi = new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g");
  const lines = new TextDecoder().decode(exit.stderr).replace(ansi, "")
    .trimEnd().split("\n");
  const error = lines.find((l) => /^error/i.test(l));
  return `${what}; stderr: ${error ?? lines.slice(-3).join(" | ")}`;
}

/** A message the worker sent on its own (cookie 0). */
export class IpcPipeMessageEvent extends Event {
  /** The message; dispose it to close descriptors not taken. */
  readonly message: IpcMessage;

  /**
   * Builds the event.
   *
   * @param message The message.
   */
  constructor(message: IpcMessage) {
    super("recv");
    this.message = message;
  }
}

/** The worker went away; every call fails from now on. */
export class IpcPipeDisconnectEvent extends Event {
  /** How the worker process ended, if known. */
  readonly exit: ProcessExit | null;

  /**
   * Builds the event.
   *
   * @param exit The exit report, or null.
   */
  constructor(exit: ProcessExit | null) {
    super("disconnect");
    this.exit = exit;
  }
}

/** The worker sent a malformed message; it was dropped, delivery goes on. */
export class IpcPipeErrorEvent extends Event {
  /** What was wrong with it. */
  readonly error: IpcProtocolError;

  /**
   * Builds the event.
   *
   * @param error What was wrong.
   */
  constructor(error: IpcProtocolError) {
    super("error");
    this.error = error;
  }
}

/** The events of {@linkcode IpcPipeUnixSocket}. */
export interface IpcPipeEventMap {
  /** A malformed message was dropped. */
  error: IpcPipeErrorEvent;
  /** A message the worker sent on its own (an event), in arrival order. */
  recv: IpcPipeMessageEvent;
  /** The worker is gone. */
  disconnect: IpcPipeDisconnectEvent;
}

/** Options of {@linkcode IpcPipeUnixSocket}. */
export interface IpcPipeOptions {
  /**
   * Arguments for the worker program; the socket's descriptor number is
   * appended as the last one (libcamera's worker convention).
   */
  args?: readonly string[];
  /** Extra environment variables for the worker. */
  env?: Readonly<Record<string, string>>;
  /** Start the worker from an empty environment (then only `env`). */
  clearEnv?: boolean;
  /** Isolation of the worker process; see {@linkcode ProcessIsolation}. */
  isolate?: boolean | ProcessIsolation;
  /** Run even if isolation is unavailable. Default false. */
  allowUnisolated?: boolean;
  /** The worker's stdout. Default `"null"`. */
  stdout?: ProcessStdio;
  /** The worker's stderr. Default `"capture"` (its tail is in exit reports). */
  stderr?: ProcessStderr;
  /** Log file for the worker (`ISOLA_LOG_FILE`). */
  logFile?: string;
  /** Default deadline of calls, ms. Default {@linkcode DEFAULT_CALL_TIMEOUT}. */
  timeout?: number;
  /**
   * Microseconds a sendSync() polls for its reply before sleeping in the
   * kernel (default {@linkcode DEFAULT_SPIN_US}: 50 on multi-CPU machines).
   * A reply within the window costs no wake-up of the caller's thread.
   */
  spin?: number;
}

/** Options of one call. */
export interface IpcCallOptions {
  /** Deadline in ms; default the pipe's. */
  timeout?: number;
  /** Aborts a Promise call (`call()` only). */
  signal?: AbortSignal;
}

interface Pending {
  cmd: number;
  resolve(msg: IpcMessage): void;
  reject(e: Error): void;
  timer?: ReturnType<typeof setTimeout>;
  onAbort?: () => void;
  signal?: AbortSignal;
}

// One receive buffer per thread: a thread is in at most one sendSync().
const shared: { rx?: MsgBuffers; pfd?: PollFds } = {};

/**
 * A worker program in a child process, and the socket to it. The worker
 * adopts the socket end whose number is its last argument (see
 * {@linkcode IpcPipeWorker}).
 *
 * - {@linkcode IpcPipeUnixSocket.sendSync} blocks this thread in the
 *   kernel until the reply: it takes the socket from the receiver Worker
 *   (one per thread, shared by all pipes, which reads everything else) and
 *   reads its reply itself, one reader at a time (docs/pipe.md). The event
 *   loop is not re-entered, so nothing runs and nothing nests while it
 *   waits (libcamera's nested sendSync hung the camera thread so).
 * - {@linkcode IpcPipeUnixSocket.call} is the same as a Promise; many may
 *   be outstanding.
 * - {@linkcode IpcPipeUnixSocket.sendAsync} sends without reply.
 * - Messages the worker sends on its own arrive as `recv` events, in
 *   order, on this thread's event loop (after a sendSync() returns, if they
 *   came while it waited).
 * - If the worker exits or closes its end, pending and later calls fail at
 *   once with {@linkcode IpcPeerGoneError}, which carries the exit report.
 *
 * @example A Deno worker program (`examples/echo_worker.ts` answers each
 * call with its bytes reversed)
 * ```ts
 * import { IpcPipeUnixSocket } from "@isola/isola";
 *
 * await using pipe = new IpcPipeUnixSocket(Deno.execPath(), {
 *   args: ["run", "--allow-ffi", "--allow-read", "examples/echo_worker.ts"],
 *   isolate: true,
 * });
 * pipe.addEventListener("recv", (e) => console.log("event", e.message.cmd));
 * using reply = pipe.sendSync(
 *   { cmd: 1, data: new Uint8Array([1, 2]) },
 *   { timeout: 5000 }, // the first call waits for Deno to start
 * );
 * console.log(reply.data); // Uint8Array(2) [ 2, 1 ]
 * ```
 */
export class IpcPipeUnixSocket extends TypedEventTarget<IpcPipeEventMap>
  implements AsyncDisposable {
  readonly #sock: IpcUnixSocket;
  readonly #process: Process | null;
  readonly #receiver: Receiver;
  readonly #id: number;
  readonly #timeout: number;
  readonly #spin: number;
  readonly #pending = new Map<number, Pending>();
  readonly #pidfd: OwnedFd | null;
  // Arrival-ordered dispatch: items by sequence number, null for a reply
  // sendSync() already took.
  readonly #held = new Map<number, ReceivedMessage | ReceivedError | null>();
  #expect = 0;
  #flushing = false;
  #nextCookie = 1;
  #state: "open" | "gone" | "closing" | "closed" = "open";
  #exit: ProcessExit | null = null;
  #exitLooked?: Promise<void>; // settles once markGone() looked for #exit
  #lateReplies = 0;
  #closed?: Promise<void>;

  /**
   * Starts `path` as the worker and connects to it; or, given a bound
   * {@linkcode IpcUnixSocket}, talks to whatever serves its other end (a
   * Worker thread running {@linkcode IpcPipeWorker}, say). The pipe then
   * owns the socket; with no process, exit reports are null and the peer's
   * end of life is seen as the socket's hang-up.
   *
   * @param path The worker program, or a bound socket.
   * @param options Arguments, isolation, timeouts (process options are
   *   ignored for a socket).
   * @throws {ProcessSpawnError} If the program cannot be started.
   * @throws {ProcessIsolationError} If isolation is refused.
   * @throws {TypeError} If the socket is not open.
   */
  constructor(path: string | IpcUnixSocket, options: IpcPipeOptions = {}) {
    super();
    this.#timeout = checkTimeout(options.timeout, DEFAULT_CALL_TIMEOUT);
    this.#spin = checkTimeout(options.spin, DEFAULT_SPIN_US);
    if (path instanceof IpcUnixSocket) {
      if (path.state !== "open") {
        throw new TypeError(`Cannot connect pipe: the socket is ${path.state}`);
      }
      this.#sock = path;
      this.#process = null;
      this.#pidfd = null;
      this.#receiver = Receiver.acquire();
      this.#id = this.#register();
      return;
    }
    const sock = new IpcUnixSocket();
    const peer = sock.create();
    try {
      this.#process = Process.spawn(path, {
        args: [...(options.args ?? []), String(peer.fd)],
        env: options.env,
        clearEnv: options.clearEnv,
        keepFds: [peer],
        isolate: options.isolate,
        allowUnisolated: options.allowUnisolated,
        stdout: options.stdout,
        stderr: options.stderr ?? "capture",
        logFile: options.logFile,
      });
    } catch (e) {
      sock.close();
      throw e;
    } finally {
      peer.close();
    }
    this.#sock = sock;
    this.#pidfd = this.#process.dupPidfd();
    this.#receiver = Receiver.acquire();
    this.#id = this.#register();
  }

  #register(): number {
    return this.#receiver.add(this.#sock.fd, this.#pidfd?.fd ?? -1, {
      onReceived: (item) => {
        this.#held.set(item.seq, item);
        this.#flush();
      },
      onHangup: () => this.#markGone(),
    });
  }

  /**
   * The worker process.
   *
   * @throws {TypeError} If the pipe was made from a socket.
   */
  get process(): Process {
    if (this.#process === null) {
      throw new TypeError(
        "This pipe has no worker process (made from a socket)",
      );
    }
    return this.#process;
  }

  #exitStatus(): ProcessExit | null {
    return this.#exit ?? this.#process?.exitStatus ?? null;
  }

  /** Replies that came after their call had timed out (then discarded). */
  get lateReplies(): number {
    return this.#lateReplies;
  }

  /** Whether calls can still be made. */
  get connected(): boolean {
    return this.#state === "open";
  }

  #cookie(): number {
    const c = this.#nextCookie;
    this.#nextCookie = c === 0xffffffff ? 1 : c + 1;
    return c;
  }

  #checkOpen(action: string): void {
    if (this.#state === "gone") {
      throw new IpcPeerGoneError(
        action,
        this.#exitStatus(),
      );
    }
    if (this.#state !== "open") {
      throw new IpcClosedError(`${action}: the pipe is closed`);
    }
  }

  #send(init: IpcMessageInit, cookie: number, action: string): void {
    const msg = new IpcMessage(init, cookie);
    if (msg.cmd === IPC_ERROR_CMD) {
      throw new RangeError(`${action}: cmd ${IPC_ERROR_CMD} is reserved`);
    }
    try {
      this.#sock.send(encodeMessage(msg.cmd, cookie, msg.data, msg.fds));
    } catch (e) {
      if (e instanceof IpcClosedError) {
        this.#markGone();
        throw new IpcPeerGoneError(
          action,
          this.#exitStatus(),
        );
      }
      throw e;
    }
  }

  /**
   * Sends a call and blocks this thread until its reply (or the deadline,
   * or the worker's death). No event handler runs meanwhile.
   *
   * @param msg Command, bytes, descriptors.
   * @param options Deadline.
   * @returns The reply; dispose it to close its descriptors.
   * @throws {IpcTimeoutError} No reply in time (a late reply is dropped).
   * @throws {IpcPeerGoneError} The worker is gone.
   * @throws {IpcRemoteError} The worker's handler threw.
   */
  sendSync(msg: IpcMessageInit, options: IpcCallOptions = {}): IpcMessage {
    const action = `Cannot call ${msg.cmd ?? 0}`;
    // A caller that blocks anyway waits (briefly) for the exit report.
    if (this.#state === "gone") throw this.#goneSync(action);
    this.#checkOpen(action);
    const timeout = checkTimeout(options.timeout, this.#timeout);
    const cookie = this.#cookie();
    const receiver = this.#receiver;
    // Take the socket from the receiver Worker: this thread reads the reply
    // itself (no thread hand-off), and only it reads until give().
    receiver.take(this.#id);
    let peerExited = false;
    try {
      this.#send(msg, cookie, action);
      const reply = this.#readReply(cookie, timeout, action);
      if (reply !== null) return reply;
      peerExited = true;
    } catch (e) {
      // The send met the hang-up before the exit was reaped: wait below.
      if (!(e instanceof IpcPeerGoneError) || e.exit !== null) throw e;
    } finally {
      peerExited = receiver.give(this.#id) || peerExited;
      if (this.#held.has(this.#expect)) setTimeout(() => this.#flush(), 0);
    }
    const exit = this.#process?.waitSync(100) ?? null;
    this.#markGone();
    throw new IpcPeerGoneError(action, exit);
  }

  #goneSync(action: string): IpcPeerGoneError {
    return new IpcPeerGoneError(
      action,
      this.#exitStatus() ?? this.#process?.waitSync(100) ?? null,
    );
  }

  /** Reads until the reply to `cookie`; null when the peer is gone. */
  #readReply(
    cookie: number,
    timeout: number,
    action: string,
  ): IpcMessage | null {
    const rx = shared.rx ??= new MsgBuffers(HEADER_SIZE + INLINE_MAX, MAX_FDS);
    const pfd = shared.pfd ??= new PollFds(2);
    const fd = this.#sock.fd;
    const deadline = performance.now() + timeout;
    let exited = false;
    let spinUntil = 0;
    const spin = this.#spin;
    for (;;) {
      const n = rx.recvmsg(fd, MSG.MSG_DONTWAIT | MSG.MSG_CMSG_CLOEXEC);
      if (n === -E.EINTR) continue;
      if (n === -E.EAGAIN) {
        if (exited) return null; // drained what the peer sent before dying
        if (spinUntil === 0) spinUntil = performance.now() + spin / 1000;
        if (performance.now() < spinUntil) continue; // see IpcPipeOptions.spin
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          throw new IpcTimeoutError(
            `${action}: no reply to cookie ${cookie} within ${timeout} ms`,
            timeout,
          );
        }
        pfd.set(0, fd, POLL.POLLIN);
        pfd.set(1, this.#pidfd?.fd ?? -1, POLL.POLLIN);
        pfd.poll(remaining === Infinity ? -1 : Math.ceil(remaining));
        if (pfd.revents(1) !== 0) exited = true;
        continue;
      }
      if (n < 0 || isEndOfStream(rx, n, fd)) return null;
      const item = decodeItem(
        rx,
        n,
        this.#id,
        0,
        this.#receiver.nextSeq(this.#id),
        1 << 30,
      );
      if (item.type === "msg" && item.cookie === cookie) {
        this.#held.set(item.seq, null);
        return this.#toReply(item);
      }
      // An event, another call's reply or a bad frame: dispatched later,
      // in order.
      this.#held.set(item.seq, item);
    }
  }

  /**
   * Sends a call; the Promise settles with its reply.
   *
   * @param msg Command, bytes, descriptors.
   * @param options Deadline and abort signal.
   * @returns The reply; dispose it to close its descriptors.
   * @throws {IpcTimeoutError} No reply in time.
   * @throws {IpcPeerGoneError} The worker is gone.
   * @throws {IpcRemoteError} The worker's handler threw.
   */
  call(msg: IpcMessageInit, options: IpcCallOptions = {}): Promise<IpcMessage> {
    const action = `Cannot call ${msg.cmd ?? 0}`;
    if (this.#state === "gone" && this.#exitStatus() === null) {
      // Fail with the exit report, as the pending calls do.
      return this.#exitLooked!.then(() => {
        throw new IpcPeerGoneError(action, this.#exitStatus());
      });
    }
    try {
      this.#checkOpen(action);
      options.signal?.throwIfAborted();
      const timeout = checkTimeout(options.timeout, this.#timeout);
      const cookie = this.#cookie();
      const p = Promise.withResolvers<IpcMessage>();
      const pending: Pending = {
        cmd: msg.cmd ?? 0,
        resolve: p.resolve,
        reject: p.reject,
        signal: options.signal,
      };
      this.#pending.set(cookie, pending);
      if (timeout !== Infinity) {
        pending.timer = setTimeout(() => {
          this.#settle(cookie)?.reject(
            new IpcTimeoutError(
              `${action}: no reply to cookie ${cookie} within ${timeout} ms`,
              timeout,
            ),
          );
        }, timeout);
      }
      if (options.signal) {
        pending.onAbort = () =>
          this.#settle(cookie)?.reject(options.signal!.reason);
        options.signal.addEventListener("abort", pending.onAbort);
      }
      try {
        this.#send(msg, cookie, action);
      } catch (e) {
        this.#settle(cookie);
        throw e;
      }
      return p.promise;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Sends a message without reply. Thrown errors are the only failures:
   * nothing is dropped silently.
   *
   * @param msg Command, bytes, descriptors.
   * @throws {IpcPeerGoneError} The worker is gone.
   * @throws {IpcTimeoutError} The worker does not read (socket full).
   */
  sendAsync(msg: IpcMessageInit): void {
    const action = `Cannot send ${msg.cmd ?? 0}`;
    this.#checkOpen(action);
    this.#send(msg, 0, action);
  }

  #settle(cookie: number): Pending | undefined {
    const p = this.#pending.get(cookie);
    if (!p) return undefined;
    this.#pending.delete(cookie);
    clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
    return p;
  }

  #toReply(m: ReceivedMessage): IpcMessage {
    const fds = m.fds.map((fd) => new OwnedFd(fd));
    const data = new Uint8Array(m.buffer);
    if (m.cmd === IPC_ERROR_CMD) {
      for (const fd of fds) fd.close();
      throw new IpcRemoteError(
        m.cmd,
        new TextDecoder().decode(data),
      );
    }
    return new IpcMessage({ cmd: m.cmd, data, fds }, m.cookie);
  }

  // Dispatches held items in sequence order; never inside sendSync().
  #flush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#held.has(this.#expect)) {
        const item = this.#held.get(this.#expect)!;
        this.#held.delete(this.#expect);
        this.#expect++;
        if (item !== null) this.#deliver(item);
      }
    } finally {
      this.#flushing = false;
    }
  }

  #deliver(item: ReceivedMessage | ReceivedError): void {
    if (item.type === "error") {
      this.dispatchEvent(
        new IpcPipeErrorEvent(new IpcProtocolError(item.reason, item.detail)),
      );
      return;
    }
    const m = item;
    if (m.cookie === 0) {
      const msg = new IpcMessage({
        cmd: m.cmd,
        data: new Uint8Array(m.buffer),
        fds: m.fds.map((fd) => new OwnedFd(fd)),
      });
      this.dispatchEvent(new IpcPipeMessageEvent(msg));
      return;
    }
    const p = this.#settle(m.cookie);
    if (!p) {
      // A reply after its call timed out (or was aborted): drop it.
      this.#lateReplies++;
      for (const fd of m.fds) closeFd(fd);
      return;
    }
    try {
      p.resolve(this.#toReply(m));
    } catch (e) {
      p.reject(e as Error);
    }
  }

  #markGone(): void {
    if (this.#state !== "open") return;
    this.#state = "gone";
    const fail = () => {
      const pending = [...this.#pending.keys()];
      for (const cookie of pending) {
        this.#settle(cookie)?.reject(
          new IpcPeerGoneError(
            `Cannot call ${this.#pending.get(cookie)?.cmd ?? ""}`.trim(),
            this.#exit,
          ),
        );
      }
      this.dispatchEvent(new IpcPipeDisconnectEvent(this.#exit));
    };
    // The exit report usually follows the hang-up within a millisecond;
    // wait for it briefly so the errors carry it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    this.#exitLooked = Promise.race([
      this.#process?.exited ?? null,
      new Promise<null>((r) => timer = setTimeout(() => r(null), 50)),
    ]).then((exit) => {
      clearTimeout(timer);
      // If the event loop was blocked past the timer, the child may well
      // have ended meanwhile: look once more (non-blocking).
      this.#exit = exit ?? this.#process?.waitSync(0) ?? null;
      fail();
    });
  }

  /**
   * Closes the pipe: stops receiving, closes the socket (the worker sees
   * the hang-up), and terminates and reaps the worker (SIGTERM, then
   * SIGKILL after `grace` ms). Pending calls fail. Idempotent.
   *
   * @param options `grace` in ms (default 1000) before each escalation.
   */
  close(options: { grace?: number } = {}): Promise<void> {
    const grace = checkTimeout(options.grace, 1000);
    this.#closed ??= (async () => {
      this.#state = "closing";
      this.#receiver.remove(this.#id);
      this.#sock.close();
      this.#pidfd?.close();
      for (const item of this.#held.values()) {
        if (item?.type === "msg") { for (const fd of item.fds) closeFd(fd); }
      }
      this.#held.clear();
      for (const cookie of [...this.#pending.keys()]) {
        this.#settle(cookie)?.reject(
          new IpcClosedError("Cannot call: the pipe was closed"),
        );
      }
      // The worker's loop ends at the hang-up: let it exit on its own
      // first, then SIGTERM, then SIGKILL.
      const process = this.#process;
      if (process !== null) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const exited = await Promise.race([
          process.exited,
          new Promise<null>((r) => timer = setTimeout(() => r(null), grace)),
        ]);
        clearTimeout(timer);
        if (exited === null) await process.terminate({ grace });
      }
      this.#state = "closed";
    })();
    return this.#closed;
  }

  /** Closes and waits (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
