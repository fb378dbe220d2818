/**
 * {@linkcode IpcPipeUnixSocket}: calls, messages and events between this
 * thread and a worker program in a child process (libcamera's
 * `IPCPipeUnixSocket`), with a sync call that cannot hang. The class wires
 * small parts: the pending calls (`_pending_calls.ts`), in-order delivery
 * (`_ordered_delivery.ts`), the sync reader (`_sync_reader.ts`), the life
 * cycle (`_pipe_life.ts`) and the receiver Worker (`_receiver.ts`).
 *
 * @module
 */
import {
  IpcClosedError,
  IpcProtocolError,
  IpcTimeoutError,
} from "../common/errors.ts";
import { checkTimeout } from "../common/_timeout.ts";
import { TypedEventTarget } from "../common/typed_event_target.ts";
import { fdNumber, OwnedFd } from "../fd/owned_fd.ts";
import {
  Process,
  type ProcessIsolation,
  type ProcessStderr,
  type ProcessStdio,
} from "../process/process.ts";
import {
  DEFAULT_SEND_TIMEOUT,
  DEFAULT_SPIN_US,
  type IpcPayloadInit,
  IpcUnixSocket,
  MAX_FDS_PER_MESSAGE,
} from "../ipc/ipc_unix_socket.ts";
import { addressOf } from "../../ffi/sync_call.ts";
import { close as closeFd } from "../../ffi/unistd.ts";
import {
  encodeMessage,
  IPC_ERROR_CMD,
  IPC_PING_CMD,
  IpcMessage,
  type IpcMessageInit,
  isReservedCmd,
} from "./ipc_message.ts";
import { decodeErrorReply } from "./ipc_call_error.ts";
import { IpcPeerGoneError, IpcRemoteError } from "./pipe_errors.ts";
import {
  IpcPipeDisconnectEvent,
  IpcPipeErrorEvent,
  type IpcPipeEventMap,
  IpcPipeMessageEvent,
} from "./pipe_events.ts";
import { PendingCalls } from "./_pending_calls.ts";
import { OrderedDelivery } from "./_ordered_delivery.ts";
import {
  callFast,
  FAST,
  FAST_DATA_MAX,
  type FastCall,
  type FastPath,
  fastSyncPath,
  readReply,
  type SyncRead,
} from "./_sync_reader.ts";
import { AdaptiveSpin } from "./_adaptive_spin.ts";
import { CadenceWarmer, WARM_LEAD_MS } from "./_cadence_warmer.ts";
import {
  E_GEN,
  E_LOCK,
  E_SEQ,
  entry,
  epollTag,
  TAG_SOCKET,
} from "./_receiver_shared.ts";
import { SendQueue } from "./_send_queue.ts";
import { PipeLife } from "./_pipe_life.ts";
import { Receiver } from "./_receiver.ts";
import {
  OWNER_GEN,
  type ReceivedError,
  type ReceivedMessage,
  UNLIMITED_WINDOW,
} from "./_receiver_shared.ts";

/** Default deadline of a call: 2 s, the upper end of libcamera's. */
export const DEFAULT_CALL_TIMEOUT = 2000;

/**
 * {@linkcode IpcPipeUnixSocket.sendSync} for a caller inside isola that
 * decodes the reply at once (the IPA proxy): a reply of bytes only comes
 * as a view of this thread's receive buffer, valid until the thread's next
 * receive, instead of bytes of its own (a new ArrayBuffer per call costs
 * 12-16 µs after an idle frame period: src/common/_bytes.ts).
 * `whileWaiting` (which must not throw) runs between sending the request
 * and sleeping for the reply, if the reply has not come by then. Not
 * exported from mod.ts.
 */
export let sendSyncBorrowed: (
  pipe: IpcPipeUnixSocket,
  msg: IpcMessageInit,
  options?: IpcCallOptions,
  whileWaiting?: () => void,
) => IpcMessage;

/** Warm calls made so far by a pipe's `keepWarm` (for tests; not in mod.ts). */
export let pipeWarmCalls: (pipe: IpcPipeUnixSocket) => number;

/**
 * Default receive window of a pipe: how many messages from the worker the
 * receiver Worker reads ahead of their delivery on this thread's event
 * loop (see {@linkcode IpcPipeOptions.receiveWindow}).
 *
 * @example
 * ```ts
 * import { DEFAULT_RECEIVE_WINDOW } from "@isola/isola";
 *
 * console.log(DEFAULT_RECEIVE_WINDOW); // 128
 * ```
 */
export const DEFAULT_RECEIVE_WINDOW = 128;

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
  /**
   * Deadline of a {@linkcode IpcPipeUnixSocket.sendAsync} while the worker
   * does not read (its socket full), ms. Default 2000.
   */
  sendTimeout?: number;
  /**
   * Flow control: the most messages from the worker (events, replies to
   * Promise calls) read but not yet delivered on this thread. At the limit
   * the receiver stops reading the worker's socket until half of them are
   * delivered, so the socket's kernel buffer fills and the worker's own
   * sends block, then fail with a timeout: memory and the event-loop
   * backlog stay bounded however fast the worker sends. Default
   * {@linkcode DEFAULT_RECEIVE_WINDOW}; `Infinity` turns flow control off.
   */
  receiveWindow?: number;
  /**
   * Keep sync calls that come at a steady cadence (a camera's frames)
   * fast: while they do, the pipe makes one warm-up call
   * ({@linkcode IPC_PING_CMD}) from a timer 3 ms before the next call is
   * due, so that the call finds both sides' code and pages warm (after
   * 33 ms idle a call takes several times its back-to-back time; see
   * docs/cadence.md). It costs one small round trip per frame, off the
   * frame's path; a warm call that times out (3 ms) counts in
   * {@linkcode IpcPipeUnixSocket.lateReplies} when its reply comes.
   * Default `false`: the worker must answer the ping, as
   * {@linkcode IpcPipeWorker} does (an IPA proxy warms its own calls).
   */
  keepWarm?: boolean;
}

/** The warmer's call and its deadline. */
const PING: IpcMessageInit = Object.freeze({ cmd: IPC_PING_CMD });
const WARM_CALL: IpcCallOptions = Object.freeze({ timeout: WARM_LEAD_MS });

/** Options of one call. */
export interface IpcCallOptions {
  /** Deadline in ms; default the pipe's. */
  timeout?: number;
  /** Aborts a Promise call (`call()` only). */
  signal?: AbortSignal;
}

type Received = ReceivedMessage | ReceivedError;

const EMPTY = new Uint8Array(0);
const NO_FDS: readonly number[] = Object.freeze([]);
/** The descriptors of a reply that has none (shared, frozen). */
const NO_REPLY_FDS: readonly OwnedFd[] = Object.freeze([]);
const INT32_BYTES = 4;
/** The block's epfd for "leave the epoll set alone". */
const NO_EPOLL = -1;

/** Grace before each escalation when closing, ms (see close()). */
const DEFAULT_CLOSE_GRACE = 1000;

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
 *   waits (libcamera's nested sendSync() waits hang a camera thread). Its
 *   deadline bounds the whole call, the send included.
 * - {@linkcode IpcPipeUnixSocket.call} is the same as a Promise; many may
 *   be outstanding. It never blocks the thread: on a full socket the call
 *   is queued and written when the worker reads again.
 * - {@linkcode IpcPipeUnixSocket.sendAsync} sends without reply.
 * - Messages the worker sends on its own arrive as `recv` events, in
 *   order, on this thread's event loop (after a sendSync() returns, if they
 *   came while it waited). At most `receiveWindow` of them wait for
 *   delivery; beyond that the worker's own sends block (flow control).
 * - If the worker exits or closes its end, pending and later calls fail at
 *   once with {@linkcode IpcPeerGoneError}, which carries the exit report.
 *
 * @example A Deno worker program (`examples/echo_worker.ts` answers each
 * call with its bytes reversed)
 * ```ts
 * import { denoWorkerCommand, IpcPipeUnixSocket } from "@isola/isola";
 *
 * // The worker is named relative to this module, not to the cwd: an
 * // isolated child starts in its jail's `/`.
 * const worker = new URL("../../examples/echo_worker.ts", import.meta.url);
 * const cmd = await denoWorkerCommand(worker, { flags: ["--allow-ffi"] });
 * await using pipe = new IpcPipeUnixSocket(cmd.path, {
 *   args: cmd.args,
 *   env: cmd.env,
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
  readonly #pidfd: OwnedFd | null;
  readonly #receiver: Receiver;
  readonly #id: number;
  readonly #timeout: number;
  readonly #spin: number;
  readonly #sendTimeout: number;
  readonly #queue: SendQueue;
  readonly #pending = new PendingCalls();
  readonly #delivery = new OrderedDelivery<Received>((item) =>
    this.#deliver(item)
  );
  readonly #life: PipeLife;
  // The one-crossing sync call (null without the stub), its reusable
  // description, and when it pays to spin for the reply.
  readonly #fast: FastPath | null;
  readonly #fastCall: FastCall;
  #nextCookie = 1;
  #lateReplies = 0;
  #credits = 0; // delivered items not yet given back to the receiver
  #creditTimer?: ReturnType<typeof setTimeout>;
  #closed?: Promise<void>;
  /** Warms the sync path before each expected call (null: off). */
  readonly #warmer: CadenceWarmer | null;
  /** Whether the call under way is the warmer's (IPC_PING_CMD allowed). */
  #pinging = false;

  /**
   * The warmer's call: a ping through the same path as a sync call,
   * waiting no longer than the lead it has over the next call (its
   * failures are the warmer's to judge).
   */
  #warmCall = (): void => {
    this.#pinging = true;
    try {
      this.#sendSync(PING, WARM_CALL, true)[Symbol.dispose]();
    } finally {
      this.#pinging = false;
    }
  };

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
    this.#sendTimeout = checkTimeout(options.sendTimeout, DEFAULT_SEND_TIMEOUT);
    const window = checkWindow(options.receiveWindow);
    if (
      options.keepWarm !== undefined && typeof options.keepWarm !== "boolean"
    ) {
      throw new TypeError(
        `Cannot connect pipe: options.keepWarm must be a boolean, not ${typeof options
          .keepWarm}`,
      );
    }
    this.#warmer = options.keepWarm ? new CadenceWarmer(this.#warmCall) : null;
    if (path instanceof IpcUnixSocket) {
      if (path.state !== "open") {
        throw new TypeError(`Cannot connect pipe: the socket is ${path.state}`);
      }
      this.#sock = path;
      this.#process = null;
      this.#pidfd = null;
    } else {
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
    }
    this.#life = new PipeLife(this.#process);
    this.#queue = new SendQueue(this.#sock, {
      wants: (cookie) => this.#pending.has(cookie),
      failed: (cookie, e) => this.#pending.take(cookie)?.reject(e),
      gone: () => this.#markGone(),
    });
    this.#receiver = Receiver.acquire();
    this.#id = this.#receiver.add(this.#sock.fd, this.#pidfd?.fd ?? -1, {
      onReceived: (item) => {
        this.#delivery.hold(item.seq, item);
        this.#delivery.flush();
      },
      onHangup: () => this.#markGone(),
    }, window);
    this.#fast = fastSyncPath();
    const table = this.#receiver.table;
    const at = (field: number) =>
      addressOf(
        new Int32Array(
          table.buffer,
          (entry(this.#id) + field) * INT32_BYTES,
          1,
        ),
      );
    this.#fastCall = {
      fd: this.#sock.fd,
      pidfd: this.#pidfd?.fd ?? -1,
      id: this.#id,
      cmd: 0,
      cookie: 0,
      data: EMPTY,
      fds: NO_FDS,
      borrow: false,
      whileWaiting: null,
      deadline: 0,
      spin: new AdaptiveSpin(this.#spin, navigator.hardwareConcurrency ?? 1),
      epfd: this.#receiver.epfd,
      lock: at(E_LOCK),
      seq: at(E_SEQ),
      tag: epollTag(TAG_SOCKET, table[entry(this.#id) + E_GEN]),
      keep: (item) => this.#delivery.hold(item.seq, item),
    };
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

  /** Replies that came after their call had timed out (then discarded). */
  get lateReplies(): number {
    return this.#lateReplies;
  }

  /** Whether calls can still be made. */
  get connected(): boolean {
    return this.#life.state === "open";
  }

  #cookie(): number {
    const c = this.#nextCookie;
    this.#nextCookie = c === 0xffffffff ? 1 : c + 1;
    return c;
  }

  /** A reserved command, unless it is the warmer's ping. */
  #refused(cmd: number): boolean {
    return isReservedCmd(cmd) && !(cmd === IPC_PING_CMD && this.#pinging);
  }

  #encode(init: IpcMessageInit, cookie: number, action: string) {
    const msg = new IpcMessage(init, cookie);
    if (this.#refused(msg.cmd)) {
      throw new RangeError(`${action}: cmd ${msg.cmd} is reserved`);
    }
    return encodeMessage(msg.cmd, cookie, msg.data, msg.fds);
  }

  /**
   * Sends on this thread, after the calls queued before it, blocking
   * until `deadline` at most.
   *
   * @throws {IpcTimeoutError} The worker did not read in time.
   * @throws {IpcPeerGoneError} The send met the hang-up.
   */
  #sendBlocking(
    payload: IpcPayloadInit,
    deadline: number,
    timeout: number,
    action: string,
  ): void {
    try {
      if (this.#queue.flushSync(deadline)) {
        const remaining = Math.max(0, deadline - performance.now());
        this.#sock.send(payload, { timeout: remaining });
        return;
      }
    } catch (e) {
      if (!(e instanceof IpcTimeoutError)) throw this.#sendError(e, action);
    }
    throw new IpcTimeoutError(
      `${action}: the worker has not read for ${timeout} ms (socket full)`,
      timeout,
    );
  }

  // A send that met the hang-up: the pipe is gone.
  #sendError(e: unknown, action: string): unknown {
    if (!(e instanceof IpcClosedError)) return e;
    this.#markGone();
    return new IpcPeerGoneError(action, this.#life.exit);
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
  sendSync(msg: IpcMessageInit, options?: IpcCallOptions): IpcMessage {
    return this.#sendSync(msg, options);
  }

  static {
    sendSyncBorrowed = (pipe, msg, options, whileWaiting) =>
      pipe.#sendSync(msg, options, true, whileWaiting ?? null);
    pipeWarmCalls = (pipe) => pipe.#warmer?.warmCalls ?? 0;
  }

  #sendSync(
    msg: IpcMessageInit,
    options: IpcCallOptions | undefined,
    borrow = false,
    whileWaiting: (() => void) | null = null,
  ): IpcMessage {
    const cmd = msg.cmd ?? 0;
    // A caller that blocks anyway waits (briefly) for the exit report.
    if (this.#life.state !== "open") this.#life.checkSync(`Cannot call ${cmd}`);
    if (this.#warmer !== null && !this.#pinging) {
      this.#warmer.note(performance.now());
    }
    // No options object is made per call when the caller passes none.
    const timeout = options?.timeout === undefined
      ? this.#timeout
      : checkTimeout(options.timeout, this.#timeout);
    const fast = this.#fast;
    const data = msg.data;
    // Calls queued by call() on a full socket go first (the slow path sends
    // after them, within this call's deadline).
    if (
      fast === null || this.#queue.length > 0 || !Number.isInteger(cmd) ||
      cmd < 0 || cmd > IPC_ERROR_CMD || this.#refused(cmd) ||
      (data !== undefined &&
        (!(data instanceof Uint8Array) || data.length > FAST_DATA_MAX)) ||
      (msg.fds !== undefined && msg.fds.length > MAX_FDS_PER_MESSAGE)
    ) {
      return this.#sendSyncSlow(msg, cmd, timeout);
    }
    const cookie = this.#cookie();
    const receiver = this.#receiver;
    const call = this.#fastCall;
    call.cmd = cmd;
    call.cookie = cookie;
    call.borrow = borrow;
    call.whileWaiting = whileWaiting;
    call.data = data ?? EMPTY;
    call.fds = msg.fds === undefined || msg.fds.length === 0
      ? NO_FDS
      : msg.fds.map((fd) => fdNumber(fd, `Cannot call ${cmd}`));
    // The deadline bounds the whole call, the send included.
    call.deadline = performance.now() + timeout;
    // Only this thread reads the socket until the stub gives it back.
    receiver.lock(this.#id);
    // A socket paused by flow control is out of the epoll set and stays
    // out until release() (the receiver cannot pause it while we hold it).
    call.epfd = receiver.paused(this.#id) ? NO_EPOLL : receiver.epfd;
    let held = true;
    let peerExited = false;
    try {
      let r = callFast(fast, call);
      if (r === FAST.PLAIN) {
        held = false;
        peerExited = receiver.gaveBack(this.#id);
        const data = fast.replyData!;
        fast.replyData = null;
        this.#delivery.gap(fast.replySeq);
        return this.#toReply(fast.replyCmd, data, NO_REPLY_FDS, cookie, cmd);
      }
      if (r === FAST.DONE) {
        held = false;
        peerExited = receiver.gaveBack(this.#id);
        const reply = fast.reply!;
        fast.reply = null;
        return this.#syncReply(reply, cmd);
      }
      if (r === FAST.RETAKE) {
        receiver.take(this.#id);
        r = FAST.SLOW;
      }
      const action = `Cannot call ${cmd}`;
      if (r === FAST.UNSENT) {
        // A full socket (or a hang-up): send as the slow path does, until
        // the same deadline.
        this.#sendBlocking(
          this.#encode(msg, cookie, action),
          call.deadline,
          timeout,
          action,
        );
      }
      let reply: ReceivedMessage | null;
      if (r === FAST.HELD) {
        reply = fast.reply;
        fast.reply = null;
      } else {
        reply = readReply(
          this.#syncRead(cookie, call.deadline, timeout, action),
        );
      }
      if (reply !== null) return this.#syncReply(reply, cmd);
      peerExited = true;
    } catch (e) {
      // The send met the hang-up before the exit was reaped: wait below.
      if (!(e instanceof IpcPeerGoneError) || e.exit !== null) throw e;
    } finally {
      peerExited = this.#endSyncRead(held, peerExited);
    }
    this.#throwGone(`Cannot call ${cmd}`);
  }

  /** A reply read by a sync call: its sequence number taken, as a message. */
  #syncReply(reply: ReceivedMessage, cmd: number): IpcMessage {
    this.#delivery.gap(reply.seq);
    return this.#toReplyItem(reply, cmd);
  }

  /**
   * The end of a sync call that read on this thread: the socket back to
   * the receiver (if still held), and what was read meanwhile delivered
   * from the event loop, never inside the call. Returns whether the peer
   * has exited.
   */
  #endSyncRead(held: boolean, peerExited: boolean): boolean {
    if (held) peerExited = this.#receiver.give(this.#id) || peerExited;
    if (this.#delivery.ready) setTimeout(() => this.#delivery.flush(), 0);
    return peerExited;
  }

  /** A sync call found the peer gone: the pipe is marked so, and it throws. */
  #throwGone(action: string): never {
    const error = this.#life.goneSync(action);
    this.#markGone();
    throw error;
  }

  #syncRead(
    cookie: number,
    deadline: number,
    timeout: number,
    action: string,
  ): SyncRead {
    const receiver = this.#receiver;
    return {
      fd: this.#sock.fd,
      pidfd: this.#pidfd?.fd ?? -1,
      id: this.#id,
      cookie,
      deadline,
      timeout,
      spin: this.#spin,
      action,
      nextSeq: () => receiver.nextSeq(this.#id),
      keep: (item) => this.#delivery.hold(item.seq, item),
    };
  }

  /** sendSync() without the one-crossing stub (or for what it cannot send). */
  #sendSyncSlow(msg: IpcMessageInit, cmd: number, timeout: number): IpcMessage {
    const action = `Cannot call ${cmd}`;
    this.#life.checkSync(action);
    const deadline = performance.now() + timeout;
    const cookie = this.#cookie();
    const payload = this.#encode(msg, cookie, action);
    const receiver = this.#receiver;
    // Take the socket from the receiver Worker: this thread reads the reply
    // itself (no thread hand-off), and only it reads until give().
    receiver.take(this.#id);
    let peerExited = false;
    try {
      // The deadline bounds the whole call, the send included.
      this.#sendBlocking(payload, deadline, timeout, action);
      const reply = readReply(
        this.#syncRead(cookie, deadline, timeout, action),
      );
      if (reply !== null) return this.#syncReply(reply, cmd);
      peerExited = true;
    } catch (e) {
      // The send met the hang-up before the exit was reaped: wait below.
      if (!(e instanceof IpcPeerGoneError) || e.exit !== null) throw e;
    } finally {
      peerExited = this.#endSyncRead(true, peerExited);
    }
    this.#throwGone(action);
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
    const cmd = msg.cmd ?? 0;
    const action = `Cannot call ${cmd}`;
    // Fail with the exit report, as the pending calls do.
    const gone = this.#life.goneLater(action);
    if (gone !== null) return gone;
    try {
      this.#life.check(action);
      options.signal?.throwIfAborted();
      const timeout = checkTimeout(options.timeout, this.#timeout);
      const cookie = this.#cookie();
      const payload = this.#encode(msg, cookie, action);
      const reply = this.#pending.add(cookie, cmd, {
        timeout,
        signal: options.signal,
        onTimeout: () =>
          new IpcTimeoutError(
            this.#queue.has(cookie)
              ? `${action}: not sent within ${timeout} ms (the worker does not read)`
              : `${action}: no reply to cookie ${cookie} within ${timeout} ms`,
            timeout,
          ),
      });
      try {
        // Never block this thread: a full socket queues the call.
        if (this.#queue.length > 0 || !this.#trySend(payload)) {
          this.#queue.push(cookie, payload);
        }
      } catch (e) {
        this.#pending.take(cookie);
        throw this.#sendError(e, action);
      }
      return reply;
    } catch (e) {
      // A send that met the hang-up fails with the exit report, as the
      // pending calls do.
      return this.#life.goneLater(action) ?? Promise.reject(e);
    }
  }

  // One non-blocking send; false if the socket is full.
  #trySend(payload: IpcPayloadInit): boolean {
    try {
      this.#sock.send(payload, { timeout: 0 });
      return true;
    } catch (e) {
      if (e instanceof IpcTimeoutError) return false;
      throw e;
    }
  }

  /**
   * Sends a message without reply. Thrown errors are the only failures:
   * nothing is dropped silently.
   *
   * Blocks this thread while the worker's socket is full, up to the
   * pipe's `sendTimeout`; like the blocking calls, it waits briefly for the
   * exit report of a worker that just died.
   *
   * @param msg Command, bytes, descriptors.
   * @throws {IpcPeerGoneError} The worker is gone.
   * @throws {IpcTimeoutError} The worker does not read (socket full).
   */
  sendAsync(msg: IpcMessageInit): void {
    const action = `Cannot send ${msg.cmd ?? 0}`;
    this.#life.checkSync(action);
    const payload = this.#encode(msg, 0, action);
    const timeout = this.#sendTimeout;
    try {
      this.#sendBlocking(payload, performance.now() + timeout, timeout, action);
    } catch (e) {
      // The send met the hang-up before the exit was reaped.
      if (e instanceof IpcPeerGoneError && e.exit === null) {
        throw this.#life.goneSync(action);
      }
      throw e;
    }
  }

  /** The reply to a call of `cmd`, or the worker's error as a throw. */
  #toReplyItem(m: ReceivedMessage, cmd: number): IpcMessage {
    const fds = m.fds.length === 0
      ? NO_REPLY_FDS
      : m.fds.map((fd) => new OwnedFd(fd));
    return this.#toReply(m.cmd, new Uint8Array(m.buffer), fds, m.cookie, cmd);
  }

  /**
   * The reply `replyCmd` with `data` and `fds` to call `cookie` of `cmd`,
   * or the worker's error as a throw.
   */
  #toReply(
    replyCmd: number,
    data: Uint8Array,
    fds: readonly OwnedFd[],
    cookie: number,
    cmd: number,
  ): IpcMessage {
    if (replyCmd === IPC_ERROR_CMD) {
      for (const fd of fds) fd.close();
      const { code, text } = decodeErrorReply(data);
      throw new IpcRemoteError(cmd, code, text);
    }
    return new IpcMessage({ cmd: replyCmd, data, fds }, cookie);
  }

  #deliver(item: Received): void {
    try {
      this.#dispatchItem(item);
    } finally {
      if (item.gen !== OWNER_GEN) this.#credit();
    }
  }

  // Gives the receiver back the credit of a delivered item (flow control).
  // While it reads, at once; once it has paused (this thread fell a whole
  // window behind), from a timer: the event loop then passes its timers
  // phase before the receiver reads more, so a flood cannot keep the loop
  // from its timers.
  #credit(): void {
    this.#credits++;
    if (this.#creditTimer !== undefined) return;
    if (!this.#receiver.paused(this.#id)) return this.#giveCredits();
    this.#creditTimer = setTimeout(() => {
      this.#creditTimer = undefined;
      this.#giveCredits();
    }, 0);
  }

  #giveCredits(): void {
    const n = this.#credits;
    this.#credits = 0;
    const state = this.#life.state;
    if (state === "open" || state === "gone") {
      this.#receiver.release(this.#id, n);
    }
  }

  #dispatchItem(item: Received): void {
    if (item.type === "error") {
      this.dispatchEvent(
        new IpcPipeErrorEvent(new IpcProtocolError(item.reason, item.detail)),
      );
      return;
    }
    if (item.cookie === 0) {
      const msg = new IpcMessage({
        cmd: item.cmd,
        data: new Uint8Array(item.buffer),
        fds: item.fds.map((fd) => new OwnedFd(fd)),
      });
      this.dispatchEvent(new IpcPipeMessageEvent(msg));
      return;
    }
    const call = this.#pending.take(item.cookie);
    if (!call) {
      // A reply after its call timed out (or was aborted): drop it.
      this.#lateReplies++;
      for (const fd of item.fds) closeFd(fd);
      return;
    }
    try {
      call.resolve(this.#toReplyItem(item, call.cmd));
    } catch (e) {
      call.reject(e as Error);
    }
  }

  #markGone(): void {
    this.#warmer?.close(); // nothing left to warm
    this.#life.markGone((exit) => {
      this.#pending.failAll((call) =>
        new IpcPeerGoneError(`Cannot call ${call.cmd}`, exit)
      );
      this.#queue.drop();
      this.dispatchEvent(new IpcPipeDisconnectEvent(exit));
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
    const grace = checkTimeout(options.grace, DEFAULT_CLOSE_GRACE);
    this.#closed ??= (async () => {
      this.#warmer?.close();
      this.#life.closing();
      this.#receiver.remove(this.#id);
      await this.#queue.stop();
      this.#sock.close();
      this.#pidfd?.close();
      this.#delivery.clear((item) => {
        if (item.type === "msg") { for (const fd of item.fds) closeFd(fd); }
      });
      this.#pending.failAll((call) =>
        new IpcClosedError(`Cannot call ${call.cmd}: the pipe was closed`)
      );
      await this.#life.end(grace);
    })();
    return this.#closed;
  }

  /** Closes and waits (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The receive window option, validated (the table holds an int32). */
function checkWindow(w: number | undefined): number {
  const v = w ?? DEFAULT_RECEIVE_WINDOW;
  if (v === Infinity) return UNLIMITED_WINDOW;
  if (!Number.isInteger(v) || v < 1 || v >= UNLIMITED_WINDOW) {
    throw new RangeError(
      `Invalid receiveWindow: ${v} (must be an integer >= 1, or Infinity)`,
    );
  }
  return v;
}
