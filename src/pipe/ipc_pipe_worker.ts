/**
 * {@linkcode IpcPipeWorker}: the worker side of an
 * {@linkcode IpcPipeUnixSocket}, for the program running in the child.
 *
 * @module
 */
import { IpcClosedError, IpcProtocolError } from "../common/errors.ts";
import {
  encodeMessage,
  IPC_ERROR_CMD,
  IPC_PING_CMD,
  IpcMessage,
  type IpcMessageInit,
  isReservedCmd,
} from "./ipc_message.ts";
import { encodeErrorReply } from "./ipc_call_error.ts";
import {
  DEFAULT_SPIN_US,
  type IpcSendOptions,
  IpcUnixSocket,
} from "../ipc/ipc_unix_socket.ts";
import { type FdLike, OwnedFd } from "../fd/owned_fd.ts";
import { E, SyscallError } from "../../ffi/errno.ts";
import { addressHalves, addressOf, SYNC_STEP } from "../../ffi/sync_call.ts";
import { MsgBuffers } from "../../ffi/socket.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import {
  decodeFrame,
  HEADER_SIZE,
  INLINE_MAX,
  isEndOfStream,
  writeHeader,
} from "../ipc/_frame.ts";
import { MSG_HEADER } from "./_receiver_shared.ts";
import {
  FAST_DATA_MAX,
  type FastPath,
  fastSyncPath,
  isPlainFrame,
} from "./_sync_reader.ts";
import { AdaptiveSpin } from "./_adaptive_spin.ts";
import { trace, TRACE_ON } from "../common/_trace.ts";
import { copyBytes } from "../common/_bytes.ts";

/**
 * Longest a serve() loop blocks its thread in one wait, ms: timers and
 * other event-loop work run at least this often while it serves (late by
 * at most this plus one handler), the HTML timer clamp for nested timers.
 */
export const SERVE_SLICE_MS = 4;

/**
 * Makes `worker` hand its handlers borrowed data, for a handler inside
 * isola that decodes a message before anything else runs on its thread
 * (the IPA host): a message of bytes only comes as a view of the thread's
 * receive buffer, valid until the thread's next receive, instead of bytes
 * of its own (a new ArrayBuffer per message costs 12-16 µs after an idle
 * frame period: src/common/_bytes.ts). Not exported from mod.ts.
 */
export let borrowCallData: (worker: IpcPipeWorker) => void;

/**
 * Has `worker` run `work` (which must not throw) once, after it sends the
 * next reply it holds (one without descriptors, sent by the wait that
 * follows) and before it sleeps for the next message, unless that came
 * already (then `work` is dropped): time in which nobody waits on the
 * worker. One extra crossing (ffi/sync_call.ts) pays for it. Not exported
 * from mod.ts.
 */
export let afterNextReply: (worker: IpcPipeWorker, work: () => void) => void;

/**
 * Tells a `serve()` worker that the call it is handling is a warm-up made
 * shortly before a frame's call (keepWarm): it gives the event loop its
 * turn right after replying, so that the frame's call finds it waiting in
 * a fresh slice. Pings (IPC_PING_CMD) do this by themselves; the IPA host
 * says it of its own warm-up calls. Not exported from mod.ts.
 */
export let turnNow: (worker: IpcPipeWorker) => void;

/**
 * Longest turn of the event loop between two slices, ms: the runtime's
 * timers have a resolution of 1 ms. A message that arrives in a turn costs
 * a pool-thread hand-off, as every message did before.
 */
export const SERVE_TURN_MS = 1;

/**
 * After this long without a message, ms, a serve() loop waits on the event
 * loop instead (in turns of {@linkcode SERVE_QUIET_TURN_MS}), so that a
 * quiet worker costs no wake-ups; a camera's 33 ms frame period stays in
 * slices.
 */
export const SERVE_QUIET_MS = 100;

/** Longest event-loop wait of a quiet serve() loop, ms (then it re-arms). */
export const SERVE_QUIET_TURN_MS = 50;

/** Period of the timer that keeps a serving program alive (the longest). */
const KEEP_ALIVE_MS = 0x7fffffff;

/** Largest message a worker accepts (as the receiver Worker). */
const MAX_MESSAGE_SIZE = 1 << 30;

const NO_FDS: readonly number[] = Object.freeze([]);
/** The descriptors of a message that has none (shared, frozen). */
const NO_OWNED_FDS: readonly OwnedFd[] = Object.freeze([]);
const NO_BYTES = new Uint8Array(0);

/**
 * Answers a call: returns (or resolves to) the reply. A throw becomes an
 * {@linkcode IpcRemoteError} in the caller, with the code of an
 * {@linkcode IpcCallError} (0 for any other error). {@linkcode OwnedFd}s in the
 * reply are closed once it is sent (the caller has its own copies); plain
 * descriptor numbers are left alone.
 */
export type IpcCallHandler = (
  msg: IpcMessage,
) => IpcMessageInit | void | Promise<IpcMessageInit | void>;

/** Handles a message sent with `sendAsync` (cookie 0). */
export type IpcMessageHandler = (msg: IpcMessage) => void | Promise<void>;

/** Handlers of {@linkcode IpcPipeWorker.serve}. */
export interface IpcPipeWorkerHandlers {
  /** Answers calls (`sendSync`, `call`). Default: an empty reply. */
  onCall?: IpcCallHandler;
  /** Receives `sendAsync` messages. Default: ignore them. */
  onMessage?: IpcMessageHandler;
}

/**
 * The child's end of a pipe. It adopts the socket whose number is the last
 * program argument, answers calls with the same cookie, receives async
 * messages, and sends events. Messages are handled one at a time, in
 * arrival order (a handler may be async). Its loop sleeps in the kernel
 * when idle.
 *
 * @example Serving a pipe (a worker program does the same with `fromArgs()`)
 * ```ts
 * import { IpcPipeUnixSocket, IpcPipeWorker, IpcUnixSocket } from "@isola/isola";
 *
 * const sock = new IpcUnixSocket();
 * const worker = new IpcPipeWorker(sock.create());
 * const served = worker.serve({
 *   onCall(msg) {
 *     return { cmd: msg.cmd, data: msg.data.toReversed() };
 *   },
 * }); // settles when the parent closes the pipe
 * const pipe = new IpcPipeUnixSocket(sock);
 * using reply = await pipe.call({ cmd: 1, data: new Uint8Array([1, 2]) });
 * console.log(reply.data); // Uint8Array(2) [ 2, 1 ]
 * await pipe.close();
 * await served;
 * ```
 */
export class IpcPipeWorker implements Disposable {
  readonly #sock: IpcUnixSocket;
  // The one-crossing loop (ffi/sync_call.ts): while it runs, a reply
  // without descriptors is written into its send buffer and sent by the
  // next wait's crossing ("reply, then wait").
  #fast: FastPath | null = null;
  // Whether a reply is held in #tx (written in place, not yet sent).
  #held = false;
  // Whether handlers get borrowed data (see borrowCallData()).
  #borrow = false;
  // Work due once the held reply is sent (see afterNextReply()).
  #afterReply: (() => void) | null = null;
  /** Whether to give the event loop a turn now (see turnNow()). */
  #turnNow = false;
  #tx: MsgBuffers | undefined;
  #txView: DataView | undefined;
  // The send header's address as u32 halves, and the frame length it is
  // set up for (-1: none): no BigInt per reply.
  #txHdrLo = 0;
  #txHdrHi = 0;
  #txLength = -1;

  static {
    borrowCallData = (worker) => {
      worker.#borrow = true;
    };
    afterNextReply = (worker, work) => {
      worker.#afterReply = work;
    };
    turnNow = (worker) => {
      worker.#turnNow = true;
    };
  }

  /**
   * Adopts a socket end.
   *
   * @param fd The end passed by the parent.
   */
  constructor(fd: FdLike) {
    this.#sock = new IpcUnixSocket();
    this.#sock.bind(fd);
  }

  /**
   * Adopts the socket whose number is the last of `args`.
   *
   * @param args The program arguments. Default `Deno.args`.
   * @returns The worker end.
   * @throws {TypeError} If the last argument is not a descriptor number.
   */
  static fromArgs(args: readonly string[] = Deno.args): IpcPipeWorker {
    const last = args.at(-1) ?? "";
    if (!/^\d+$/.test(last)) {
      throw new TypeError(
        `Cannot start IPC worker: the last argument "${last}" is not a descriptor number`,
      );
    }
    return new IpcPipeWorker(Number(last));
  }

  /**
   * Sends an event (cookie 0) to the parent. While the parent does not
   * take its events (its pipe's receive window is full, see
   * `IpcPipeOptions.receiveWindow`), the socket fills and this blocks the
   * worker's thread, up to `options.timeout` (default 2 s).
   *
   * @param msg Command, bytes, descriptors.
   * @param options The send deadline.
   * @throws {IpcClosedError} The parent is gone.
   * @throws {IpcTimeoutError} The parent did not take events in time.
   * @throws {RangeError} A reserved command ({@linkcode IPC_ERROR_CMD},
   *   {@linkcode IPC_PING_CMD}).
   */
  emit(msg: IpcMessageInit, options: IpcSendOptions = {}): void {
    const m = new IpcMessage(msg);
    if (isReservedCmd(m.cmd)) {
      throw new RangeError(`Cannot emit ${m.cmd}: the command is reserved`);
    }
    this.#flushHeld();
    this.#sock.send(encodeMessage(m.cmd, 0, m.data, m.fds), options);
  }

  /**
   * Serves until the parent closes the pipe.
   *
   * @param handlers Call and message handlers.
   * @returns When the parent has hung up.
   */
  serve(handlers: IpcPipeWorkerHandlers = {}): Promise<void> {
    const fast = fastSyncPath();
    if (fast !== null) return this.#serveSliced(fast, handlers);
    const done = Promise.withResolvers<void>();
    let chain = Promise.resolve();
    this.#sock.addEventListener("message", (e) => {
      const payload = e.message;
      chain = chain.then(() =>
        this.#dispatch(payload.data, payload.fds, handlers)
      );
    });
    this.#sock.addEventListener("close", () => {
      chain.then(() => {
        this.#sock.close();
        done.resolve();
      });
    });
    return done.promise;
  }

  // serve() without a pool-thread hop per message: waits on this thread,
  // in slices of at most SERVE_SLICE_MS, and between slices lets the event
  // loop park for up to SERVE_TURN_MS with the socket watched from a pool
  // thread (timers only advance when the runtime parks: a turn that never
  // parks, such as a MessageChannel message, runs no timer).
  async #serveSliced(
    fast: FastPath,
    handlers: IpcPipeWorkerHandlers,
  ): Promise<void> {
    const pfd = new PollFds(1);
    const fd = this.#sock.fd;
    // Serving keeps the program alive until the hang-up, even while a
    // handler's Promise is pending with nothing else to wait for.
    const alive = setInterval(() => {}, KEEP_ALIVE_MS);
    const spin = new AdaptiveSpin(0, 1); // waits here are long: never spin
    try {
      let lastTurn = performance.now();
      let lastMessage = lastTurn;
      for (;;) {
        if (this.#sock.state !== "open") break; // close() while serving
        const now = performance.now();
        let timeout: number;
        if (now - lastMessage > SERVE_QUIET_MS) {
          // Quiet for a while: wait on the event loop as a plain Promise
          // would (no wake-ups of this thread, timers on time) until a
          // message comes; the first one pays the pool-thread hand-off.
          this.#flushHeld();
          pfd.set(0, fd, POLL.POLLIN);
          await pfd.pollAsync(SERVE_QUIET_TURN_MS);
          lastTurn = performance.now();
          timeout = 0; // take what came, if anything
        } else {
          let left = SERVE_SLICE_MS - (now - lastTurn);
          if (left <= 0) {
            this.#flushHeld(); // the turn may be long: never hold a reply
            pfd.set(0, fd, POLL.POLLIN);
            await pfd.pollAsync(SERVE_TURN_MS);
            lastTurn = performance.now();
            left = SERVE_SLICE_MS;
          }
          timeout = Math.ceil(left);
        }
        const n = this.#waitFast(fast, spin, timeout);
        if (n === null) break;
        if (n < 0) continue;
        lastMessage = performance.now();
        this.#turnNow = false;
        let r;
        try {
          r = this.#dispatchFrame(fast, n, handlers);
        } catch (e) {
          // A bad frame is dropped (its descriptors closed), as the event
          // delivery of IpcUnixSocket does; serving goes on.
          if (e instanceof IpcProtocolError) continue;
          throw e;
        }
        if (r instanceof Promise) await r;
        // A warm-up comes WARM_LEAD_MS (3 ms) before a frame's call: the
        // event loop gets its turn now, and the call then finds this
        // thread waiting in a fresh slice rather than in a turn (which
        // costs the pool-thread hand-off). Interleaved, serve() with
        // keepWarm at 30 fps: 132 -> 99 µs p50.
        if (this.#turnNow) lastTurn = -Infinity;
      }
    } finally {
      clearInterval(alive);
      this.#fast = null;
      this.#sock.close();
    }
  }

  /**
   * Serves on this thread with blocking receives until the parent closes
   * the pipe: the fastest loop (no event-loop hop per message), for
   * synchronous handlers. Timers and other async work do not run while it
   * serves; use {@linkcode IpcPipeWorker.serve} for that.
   *
   * @param handlers Synchronous call and message handlers.
   * @param options `spin`: microseconds to poll for the next message
   *   before sleeping (default {@linkcode DEFAULT_SPIN_US}; 0 to always
   *   sleep at once).
   * @throws {TypeError} If a handler returns a Promise.
   */
  serveBlocking(
    handlers: IpcPipeWorkerHandlers = {},
    options: { spin?: number } = {},
  ): void {
    const spinUs = options.spin ?? DEFAULT_SPIN_US;
    const fast = fastSyncPath();
    if (fast !== null) {
      const spin = new AdaptiveSpin(spinUs, navigator.hardwareConcurrency ?? 1);
      try {
        for (;;) {
          const n = this.#waitFast(fast, spin, -1);
          if (n === null) break;
          if (n < 0) continue;
          const r = this.#dispatchFrame(fast, n, handlers);
          if (r instanceof Promise) {
            throw new TypeError(
              "Cannot serve blocking: a handler returned a Promise (use serve())",
            );
          }
        }
      } finally {
        this.#fast = null;
        this.#sock.close();
      }
      return;
    }
    for (;;) {
      let payload;
      try {
        payload = this.#sock.receive({ spin: spinUs });
      } catch (e) {
        if (e instanceof IpcClosedError) break;
        throw e;
      }
      const r = this.#dispatch(payload.data, payload.fds, handlers);
      if (r instanceof Promise) {
        throw new TypeError(
          "Cannot serve blocking: a handler returned a Promise (use serve())",
        );
      }
    }
    this.#sock.close();
  }

  /**
   * Sends the held reply (if any), then waits up to `timeoutMs` (-1: no
   * limit) for the next record: one crossing, or two when work is due
   * after the reply (see afterNextReply()), which runs between them unless
   * a record came already.
   *
   * @returns Its length, -1 when nothing came in time, null at the end
   *   (the parent hung up).
   * @throws {SyscallError} If a read fails otherwise.
   */
  #waitFast(
    fast: FastPath,
    spin: AdaptiveSpin,
    timeoutMs: number,
  ): number | null {
    const work = this.#afterReply;
    if (work !== null && this.#held) {
      this.#afterReply = null;
      const n = this.#cross(fast, null, 0);
      if (n !== -1) return n;
      work();
    }
    return this.#cross(fast, spin, timeoutMs);
  }

  /** One crossing of {@linkcode IpcPipeWorker.#waitFast} (no spin: null). */
  #cross(
    fast: FastPath,
    spin: AdaptiveSpin | null,
    timeoutMs: number,
  ): number | null {
    const { block, rx } = fast;
    this.#fast = fast;
    const fd = this.#sock.fd;
    rx.prepareRecv();
    if (fast.owner !== this) {
      fast.owner = this;
      block.socket(fd, -1);
      block.receiver(-1, 0, 0, 0n, 0n);
      block.recv(fast.rxHdr);
    }
    const held = this.#held;
    if (held) block.sendHalves(this.#txHdrLo, this.#txHdrHi);
    else block.sendHalves(0, 0);
    const spinUs = spin === null ? 0 : spin.next();
    block.wait(-1, Math.round(spinUs * fast.readsPerUs), timeoutMs);
    const n = rx.finishRecv(block.call());
    if (held) {
      this.#held = false;
      if (block.sent < 0) {
        // Not sent (the parent's socket is full: its receive window is,
        // say), so nothing was read either: the ordinary send decides,
        // then the loop waits again.
        this.#sendHeld();
        return -1;
      }
    }
    const step = block.step;
    spin?.record(spinUs, step === SYNC_STEP.SPIN);
    if (step === SYNC_STEP.IDLE) return -1;
    if (step === SYNC_STEP.FAILED) {
      if (n === -E.EINTR) return -1;
      if (n === -E.ECONNRESET || n === -E.EPIPE) return null;
      throw new SyscallError(-n, "recvmsg", "Cannot receive message");
    }
    if (n === 0 && isEndOfStream(rx, n, fd)) return null;
    return n;
  }

  /** Decodes the record `n` bytes long in the receive buffer and handles it. */
  #dispatchFrame(
    fast: FastPath,
    n: number,
    handlers: IpcPipeWorkerHandlers,
  ): void | Promise<void> {
    const rx = fast.rx;
    if (isPlainFrame(rx, n)) {
      // The usual message: bytes only, read in place (one copy, no frame
      // or view object).
      const cookie = fast.rxView.getUint32(HEADER_SIZE + 4, true);
      if (TRACE_ON) trace("worker.received", cookie);
      return this.#handle(
        fast.rxView.getUint32(HEADER_SIZE, true),
        cookie,
        this.#borrow
          ? fast.rxViews.view(HEADER_SIZE + MSG_HEADER, n)
          : rx.data.slice(HEADER_SIZE + MSG_HEADER, n),
        NO_OWNED_FDS,
        handlers,
      );
    }
    const frame = decodeFrame(rx, n, MAX_MESSAGE_SIZE);
    if (TRACE_ON && frame.data.length >= MSG_HEADER) {
      const v = new DataView(frame.data.buffer, frame.data.byteOffset);
      trace("worker.received", v.getUint32(4, true));
    }
    return this.#dispatch(
      frame.data,
      frame.fds.map((fd) => new OwnedFd(fd)),
      handlers,
    );
  }

  /** Sends a reply held for the next crossing now (before an event). */
  #flushHeld(): void {
    if (!this.#held) return;
    this.#held = false;
    this.#sendHeld();
  }

  /** Sends the held reply as an ordinary send (its frame is in #tx). */
  #sendHeld(): void {
    const message = this.#tx!.data.slice(HEADER_SIZE, this.#txLength);
    try {
      this.#sock.send({ data: message, fds: [] });
    } catch (e) {
      if (!(e instanceof IpcClosedError)) throw e;
    }
  }

  #dispatch(
    data: Uint8Array,
    fds: FdLike[],
    handlers: IpcPipeWorkerHandlers,
  ): void | Promise<void> {
    if (data.length < MSG_HEADER) {
      for (const fd of fds) if (fd instanceof OwnedFd) fd.close();
      return;
    }
    const v = new DataView(data.buffer, data.byteOffset);
    return this.#handle(
      v.getUint32(0, true),
      v.getUint32(4, true),
      data.subarray(MSG_HEADER),
      fds,
      handlers,
    );
  }

  /** Runs the handler of message `cmd`, `cookie`; replies to a call. */
  #handle(
    cmd: number,
    cookie: number,
    data: Uint8Array,
    fds: readonly FdLike[],
    handlers: IpcPipeWorkerHandlers,
  ): void | Promise<void> {
    if (cmd === IPC_PING_CMD && cookie !== 0) {
      // A warm-up call (an owner's keepWarm): answered here, no handler.
      this.#turnNow = true;
      for (const fd of fds) if (fd instanceof OwnedFd) fd.close();
      this.#reply(IPC_PING_CMD, cookie, NO_BYTES, NO_OWNED_FDS);
      return;
    }
    const msg = new IpcMessage({ cmd, data, fds }, cookie);
    let r;
    try {
      r = cookie === 0 ? handlers.onMessage?.(msg) : handlers.onCall?.(msg);
    } catch (e) {
      msg[Symbol.dispose]();
      if (cookie === 0) throw e;
      this.#replyError(cookie, e);
      return;
    }
    if (r instanceof Promise) {
      return r.then(
        (reply) => this.#finish(msg, cookie, reply),
        (e) => {
          msg[Symbol.dispose]();
          if (cookie === 0) throw e;
          this.#replyError(cookie, e);
        },
      );
    }
    this.#finish(msg, cookie, r);
  }

  #finish(msg: IpcMessage, cookie: number, reply: IpcMessageInit | void) {
    try {
      if (cookie === 0) return;
      const r = new IpcMessage(reply ?? { cmd: msg.cmd });
      if (isReservedCmd(r.cmd)) {
        // The caller is told, not sent a reply it would misread.
        this.#replyError(
          cookie,
          new RangeError(`Cannot reply with ${r.cmd}: the command is reserved`),
        );
      } else this.#reply(r.cmd, cookie, r.data, r.fds);
      // OwnedFds in a reply are handed over: the peer has its copies now.
      for (const fd of r.fds) if (fd instanceof OwnedFd) fd.close();
    } finally {
      msg[Symbol.dispose]();
    }
  }

  #replyError(cookie: number, e: unknown): void {
    this.#reply(IPC_ERROR_CMD, cookie, encodeErrorReply(e), []);
  }

  #reply(
    cmd: number,
    cookie: number,
    data: Uint8Array,
    fds: readonly FdLike[],
  ) {
    const fast = this.#fast;
    if (
      fast !== null && fds.length === 0 && !this.#held &&
      data.length <= FAST_DATA_MAX
    ) {
      // Written in place; the next wait's crossing sends it.
      const size = MSG_HEADER + data.length;
      // A buffer of its own: a sendSync() of this thread (to a pipe of its
      // own) may run between this and the crossing that sends the reply.
      let tx = this.#tx;
      if (tx === undefined) {
        tx = this.#tx = new MsgBuffers(HEADER_SIZE + INLINE_MAX, 1);
        [this.#txHdrLo, this.#txHdrHi] = addressHalves(addressOf(tx.msghdr));
      }
      writeHeader(tx.data, size, 0, 0);
      const view = this.#txView ??= new DataView(tx.data.buffer);
      view.setUint32(HEADER_SIZE, cmd, true);
      view.setUint32(HEADER_SIZE + 4, cookie, true);
      copyBytes(tx.data, HEADER_SIZE + MSG_HEADER, data);
      // sendmsg(2) leaves the header as it is: set up again only for
      // another length.
      if (this.#txLength !== HEADER_SIZE + size) {
        tx.prepareSend(HEADER_SIZE + size, NO_FDS);
        this.#txLength = HEADER_SIZE + size;
      }
      this.#held = true;
      if (TRACE_ON) trace("worker.reply", cookie);
      return;
    }
    this.#flushHeld();
    this.#sendNow(cmd, cookie, data, fds);
  }

  #sendNow(
    cmd: number,
    cookie: number,
    data: Uint8Array,
    fds: readonly FdLike[],
  ): void {
    try {
      this.#sock.send(encodeMessage(cmd, cookie, data, fds));
    } catch (e) {
      if (!(e instanceof IpcClosedError)) throw e;
    }
  }

  /** Closes the socket (the parent sees the hang-up). Idempotent. */
  close(): void {
    this.#sock.close();
  }

  /** Closes (`using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}
