/**
 * {@linkcode IpcUnixSocket}: whole messages of bytes plus file descriptors
 * over a Unix socketpair (libcamera's `IPCUnixSocket`).
 *
 * @module
 */
import { E, SyscallError } from "../../ffi/errno.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import {
  getsockoptInt,
  MSG,
  MsgBuffers,
  shutdown,
  SOCK,
  socketpair,
} from "../../ffi/socket.ts";
import { close as closeFd, F, fcntl } from "../../ffi/unistd.ts";
import {
  decodeFrame,
  FLAG_MEMFD,
  HEADER_SIZE,
  INLINE_MAX,
  isEndOfStream,
  MAX_FDS,
  SIZE_LIMIT,
  writeHeader,
} from "./_frame.ts";
import { checkTimeout } from "../common/_timeout.ts";
import {
  IpcClosedError,
  IpcProtocolError,
  IpcTimeoutError,
} from "../common/errors.ts";
import { createMemfd, sealFd, writeFd } from "../fd/memfd.ts";
import { type FdLike, fdNumber, OwnedFd } from "../fd/owned_fd.ts";
import { TypedEventTarget } from "../common/typed_event_target.ts";

/** What to send: bytes and descriptors, both optional. */
export interface IpcPayloadInit {
  /**
   * The bytes, or a list of chunks sent as their concatenation (gather
   * write: no copy on the caller's side). Any size; above 128 KiB they
   * travel in a sealed memfd.
   */
  data?: Uint8Array | readonly Uint8Array[];
  /**
   * Descriptors to pass (at most 253, or 252 when `data` exceeds 128 KiB).
   * They are duplicated into the receiver; the sender keeps its own and
   * still closes them.
   */
  fds?: readonly FdLike[];
}

/**
 * A received message. Its descriptors are owned by whoever holds it: take
 * the ones you keep (`fds[i].release()` or keep the {@linkcode OwnedFd}),
 * and dispose the payload to close the rest.
 *
 * @example
 * ```ts
 * import { IpcUnixSocket } from "@isola/isola";
 *
 * using a = new IpcUnixSocket();
 * using b = new IpcUnixSocket();
 * b.bind(a.create());
 * a.send({ data: new Uint8Array([7]) });
 * using msg = b.receive();
 * console.log(msg.data, msg.fds.length); // Uint8Array(1) [ 7 ] 0
 * ```
 */
export class IpcPayload implements Disposable {
  /** The message bytes (a copy the caller owns). */
  readonly data: Uint8Array;
  /** The descriptors, in the order they were sent, close-on-exec. */
  readonly fds: OwnedFd[];

  /**
   * Builds the object.
   *
   * @param data The bytes.
   * @param fds The descriptors, now owned by this payload.
   */
  constructor(data: Uint8Array, fds: OwnedFd[]) {
    this.data = data;
    this.fds = fds;
  }

  /** Closes every descriptor not yet released or closed. */
  [Symbol.dispose](): void {
    for (const fd of this.fds) fd.close();
  }
}

/** Options of {@linkcode IpcUnixSocket}. */
export interface IpcUnixSocketOptions {
  /**
   * Most descriptors accepted in one received message (1-253, default
   * 253). A message with more is rejected with `fds-truncated` and the
   * descriptors that arrived are closed.
   */
  maxFds?: number;
  /**
   * Largest message data accepted, in bytes (default 1 GiB, at most
   * 2^32 - 1). A larger declared size is rejected with `too-large`.
   */
  maxMessageSize?: number;
}

/** Options of {@linkcode IpcUnixSocket.send}. */
export interface IpcSendOptions {
  /**
   * How long to wait, in milliseconds, for room in the socket when the
   * peer is not reading. `0` fails at once; `Infinity` waits for ever.
   * Default {@linkcode DEFAULT_SEND_TIMEOUT}.
   */
  timeout?: number;
}

/** Options of {@linkcode IpcUnixSocket.receive}. */
export interface IpcReceiveOptions {
  /**
   * How long to wait for a message, in milliseconds. `0` only takes what is
   * already queued. Default `Infinity` (the peer hanging up still ends the
   * wait).
   */
  timeout?: number;
  /**
   * Microseconds to poll for a message (non-blocking reads in a loop)
   * before sleeping in the kernel. Spinning trades CPU for latency: a reply
   * that comes within the window costs no wake-up of this thread (on a VM a
   * cross-CPU wake-up can cost tens of µs). Default 0.
   */
  spin?: number;
}

/**
 * The spin window isola uses for synchronous waits where it blocks anyway:
 * 50 µs on machines with more than one CPU, 0 on one CPU (where spinning
 * would only delay the peer).
 */
export const DEFAULT_SPIN_US: number =
  (globalThis.navigator?.hardwareConcurrency ?? 1) > 1 ? 50 : 0;

/** Default send timeout: 2 s, the upper end of libcamera's IPC timeouts. */
export const DEFAULT_SEND_TIMEOUT = 2000;

/**
 * The largest data carried inside the socket record itself (128 KiB);
 * larger data goes in a sealed memfd passed with the message.
 */
export const INLINE_DATA_MAX: number = INLINE_MAX;

/** The most descriptors in one message: the kernel's SCM_MAX_FD, 253. */
export const MAX_FDS_PER_MESSAGE: number = MAX_FDS;

/** A received message, as an event. */
export class IpcMessageEvent extends Event {
  /** The message; its descriptors belong to the listener. */
  readonly message: IpcPayload;

  /**
   * Builds the event.
   *
   * @param message The message.
   */
  constructor(message: IpcPayload) {
    super("message");
    this.message = message;
  }
}

/** A frame that was rejected (or a receive that failed), as an event. */
export class IpcErrorEvent extends Event {
  /** What went wrong: usually an {@linkcode IpcProtocolError}. */
  readonly error: Error;

  /**
   * Builds the event.
   *
   * @param error What went wrong.
   */
  constructor(error: Error) {
    super("error");
    this.error = error;
  }
}

/** The events of {@linkcode IpcUnixSocket}. */
export interface IpcUnixSocketEventMap {
  /** A message arrived (libcamera's `readyRead`, with the message). */
  message: IpcMessageEvent;
  /** A bad frame was dropped; delivery goes on. */
  error: IpcErrorEvent;
  /** The peer hung up; no more events follow. */
  close: Event;
}

/** Where a socket stands. */
export type IpcUnixSocketState = "unbound" | "open" | "peer-closed" | "closed";

function pollWait(remaining: number): number {
  return remaining === Infinity ? -1 : Math.max(0, Math.ceil(remaining));
}

/**
 * One end of a `SOCK_SEQPACKET` Unix socketpair that carries whole
 * messages: bytes and file descriptors together, delivered complete or not
 * at all.
 *
 * Create a pair with {@linkcode IpcUnixSocket.create}, which returns the
 * other end as an {@linkcode OwnedFd} to hand to a Worker or child process;
 * there, {@linkcode IpcUnixSocket.bind} adopts it. Then either call
 * {@linkcode IpcUnixSocket.receive} (blocking, with a timeout) or listen
 * for `message` events, which are delivered on the event loop without
 * blocking it (a pool thread sleeps in poll(2); no busy polling).
 *
 * Fixes over libcamera's: one record per message (no header/body split that
 * desynchronises on `EMSGSIZE`), hang-up detection (SEQPACKET), no size
 * cliff (sealed memfd above 128 KiB), received descriptors close-on-exec,
 * and truncated or malformed records rejected with their descriptors
 * closed.
 *
 * @example Round trip with a descriptor
 * ```ts
 * import { createMemfd, IpcUnixSocket, readFd } from "@isola/isola";
 *
 * using a = new IpcUnixSocket();
 * using b = new IpcUnixSocket();
 * b.bind(a.create());
 *
 * using buf = createMemfd({ data: new TextEncoder().encode("frame") });
 * a.send({ data: new Uint8Array([1, 2]), fds: [buf] });
 *
 * using msg = b.receive({ timeout: 1000 });
 * console.log(new TextDecoder().decode(readFd(msg.fds[0]))); // "frame"
 * ```
 *
 * @example Event-driven receive
 * ```ts
 * import { IpcUnixSocket } from "@isola/isola";
 *
 * await using a = new IpcUnixSocket();
 * using b = new IpcUnixSocket();
 * b.bind(a.create());
 * const got = Promise.withResolvers<Uint8Array>();
 * a.addEventListener("message", (e) => {
 *   using msg = e.message;
 *   got.resolve(msg.data);
 * });
 * b.send({ data: new Uint8Array([42]) });
 * console.log(await got.promise); // Uint8Array(1) [ 42 ]
 * ```
 */
export class IpcUnixSocket extends TypedEventTarget<IpcUnixSocketEventMap>
  implements Disposable, AsyncDisposable {
  #fd = -1;
  #state: IpcUnixSocketState = "unbound";
  #tx?: MsgBuffers;
  #rx?: MsgBuffers;
  #pfd?: PollFds;
  readonly #maxFds: number;
  readonly #maxSize: number;
  #watching = false;
  #eof = false; // end of stream read: nothing more will ever arrive
  readonly #released = Promise.withResolvers<void>();

  /**
   * Makes an unbound socket; call {@linkcode IpcUnixSocket.create} or
   * {@linkcode IpcUnixSocket.bind} next.
   *
   * @param options Receive limits.
   * @throws {RangeError} If a limit is out of range.
   */
  constructor(options: IpcUnixSocketOptions = {}) {
    super();
    const maxFds = options.maxFds ?? MAX_FDS;
    if (!Number.isInteger(maxFds) || maxFds < 1 || maxFds > MAX_FDS) {
      throw new RangeError(
        `Invalid maxFds: ${maxFds} (must be 1-${MAX_FDS})`,
      );
    }
    const maxSize = options.maxMessageSize ?? 1024 * 1024 * 1024;
    if (!Number.isInteger(maxSize) || maxSize < 0 || maxSize > SIZE_LIMIT) {
      throw new RangeError(
        `Invalid maxMessageSize: ${maxSize} (must be 0-${SIZE_LIMIT})`,
      );
    }
    this.#maxFds = maxFds;
    this.#maxSize = maxSize;
  }

  /** Where the socket stands: `unbound`, `open`, `peer-closed`, `closed`. */
  get state(): IpcUnixSocketState {
    return this.#state;
  }

  /**
   * Resolves once the descriptor is really closed: right after
   * {@linkcode IpcUnixSocket.close}, or when the pending readiness wait of
   * event delivery has returned.
   */
  get released(): Promise<void> {
    return this.#released.promise;
  }

  /**
   * Creates a socketpair (`SOCK_SEQPACKET`, close-on-exec), keeps one end,
   * and returns the other.
   *
   * @returns The other end, to hand to a Worker (`release()` and post the
   *   number) or a child process.
   * @throws {TypeError} If the socket is already bound.
   * @throws {SyscallError} If socketpair fails (e.g. `EMFILE`).
   */
  create(): OwnedFd {
    this.#checkUnbound("create");
    const r = socketpair(SOCK.AF_UNIX, SOCK.SOCK_SEQPACKET | SOCK.SOCK_CLOEXEC);
    if (typeof r === "number") {
      throw new SyscallError(-r, "socketpair", "Cannot create IPC socket");
    }
    this.#open(r[0]);
    return new OwnedFd(r[1]);
  }

  /**
   * Adopts an end made by {@linkcode IpcUnixSocket.create} elsewhere (e.g.
   * received from a parent). The socket takes ownership: an
   * {@linkcode OwnedFd} is released into it, a number must not be closed by
   * the caller any more.
   *
   * @param fd The socket end.
   * @throws {TypeError} If already bound, or `fd` is not a
   *   `SOCK_SEQPACKET` socket.
   * @throws {SyscallError} If `fd` is not an open descriptor (`EBADF`).
   */
  bind(fd: FdLike): void {
    this.#checkUnbound("bind");
    const n = fdNumber(fd, "Cannot bind IPC socket");
    const type = getsockoptInt(n, SOCK.SOL_SOCKET, SOCK.SO_TYPE);
    if (type === -88) {
      throw new TypeError(`Cannot bind IPC socket: fd ${n} is not a socket`);
    }
    if (type < 0) {
      throw new SyscallError(-type, "getsockopt", "Cannot bind IPC socket");
    }
    if (type !== SOCK.SOCK_SEQPACKET) {
      throw new TypeError(
        `Cannot bind IPC socket: fd ${n} is not a SOCK_SEQPACKET socket`,
      );
    }
    // An end inherited through exec has lost FD_CLOEXEC: set it again so it
    // does not leak into this process's own children.
    const fdFlags = fcntl(n, F.F_GETFD);
    if (fdFlags >= 0 && (fdFlags & F.FD_CLOEXEC) === 0) {
      fcntl(n, F.F_SETFD, fdFlags | F.FD_CLOEXEC);
    }
    if (fd instanceof OwnedFd) fd.release();
    this.#open(n);
  }

  /**
   * The descriptor number (still owned by the socket), for poll(2) or
   * diagnostics.
   *
   * @throws {TypeError} If unbound or closed.
   */
  get fd(): number {
    if (this.#fd < 0 || this.#state === "closed") {
      throw new TypeError("Cannot get fd: the IPC socket is not open");
    }
    return this.#fd;
  }

  #checkUnbound(what: string): void {
    if (this.#state !== "unbound") {
      throw new TypeError(`Cannot ${what}: the IPC socket is ${this.#state}`);
    }
  }

  #open(fd: number): void {
    this.#fd = fd;
    this.#state = "open";
    this.#tx = new MsgBuffers(HEADER_SIZE + INLINE_MAX, MAX_FDS);
    this.#rx = new MsgBuffers(HEADER_SIZE + INLINE_MAX, this.#maxFds);
    this.#pfd = new PollFds(1);
  }

  #checkUsable(action: string): void {
    switch (this.#state) {
      case "open":
        return;
      case "unbound":
        throw new TypeError(`${action}: the IPC socket is not bound`);
      case "peer-closed":
        throw new IpcClosedError(`${action}: the peer closed its end`);
      case "closed":
        throw new IpcClosedError(`${action}: the IPC socket is closed`);
    }
  }

  /**
   * Sends one message. It arrives whole or not at all: when the socket is
   * full because the peer does not read, `send` waits (blocking this
   * thread) up to `timeout`, then throws without having sent anything.
   * The descriptors are duplicated into the peer; the caller keeps its own.
   *
   * @param payload Bytes and descriptors.
   * @param options The timeout.
   * @throws {RangeError} Too many descriptors, data over 4 GiB, bad timeout.
   * @throws {TypeError} A closed {@linkcode OwnedFd} in `fds`, or unbound.
   * @throws {IpcTimeoutError} The peer did not make room in time.
   * @throws {IpcClosedError} The peer hung up, or this end is closed.
   * @throws {SyscallError} Any other failure, e.g. `EBADF` for a bad fd.
   *
   * @example
   * ```ts
   * import { IpcUnixSocket } from "@isola/isola";
   *
   * using a = new IpcUnixSocket();
   * using _peer = a.create();
   * a.send({ data: new TextEncoder().encode("hello") }, { timeout: 100 });
   * ```
   */
  send(payload: IpcPayloadInit = {}, options: IpcSendOptions = {}): void {
    const action = "Cannot send message";
    this.#checkUsable(action);
    const timeout = checkTimeout(options.timeout, DEFAULT_SEND_TIMEOUT);
    const parts = payload.data === undefined
      ? []
      : payload.data instanceof Uint8Array
      ? [payload.data]
      : payload.data;
    let length = 0;
    for (const part of parts) {
      if (!(part instanceof Uint8Array)) {
        throw new TypeError(
          `${action}: data must be a Uint8Array or an array of them`,
        );
      }
      length += part.length;
    }
    const fds = (payload.fds ?? []).map((fd) => fdNumber(fd, action));
    if (fds.length > MAX_FDS) {
      throw new RangeError(
        `${action}: ${fds.length} descriptors, at most ${MAX_FDS} per message`,
      );
    }
    if (length > SIZE_LIMIT) {
      throw new RangeError(
        `${action}: ${length} bytes, at most ${SIZE_LIMIT} per message`,
      );
    }
    const deadline = performance.now() + timeout;
    if (length <= INLINE_MAX) {
      const tx = this.#tx!;
      writeHeader(tx.data, length, fds.length, 0);
      let off = HEADER_SIZE;
      for (const part of parts) {
        tx.data.set(part, off);
        off += part.length;
      }
      const r = this.#sendRecord(HEADER_SIZE + length, fds, deadline);
      if (r !== -E.EMSGSIZE) return this.#sendResult(r, timeout);
      // The socket's buffer is smaller than a record (SO_SNDBUF of an
      // adopted socket): fall through to the memfd path.
    }
    if (fds.length + 1 > MAX_FDS) {
      throw new RangeError(
        `${action}: ${fds.length} descriptors; with data over ` +
          `${INLINE_MAX} bytes at most ${MAX_FDS - 1} (one carries the data)`,
      );
    }
    using memfd = createMemfd({ name: "isola-message" });
    let off = 0;
    for (const part of parts) {
      writeFd(memfd, part, off);
      off += part.length;
    }
    sealFd(memfd);
    writeHeader(this.#tx!.data, length, fds.length, FLAG_MEMFD);
    const r = this.#sendRecord(HEADER_SIZE, [...fds, memfd.fd], deadline);
    this.#sendResult(r, timeout);
  }

  #sendRecord(length: number, fds: number[], deadline: number): number {
    const tx = this.#tx!;
    const pfd = this.#pfd!;
    for (;;) {
      const r = tx.sendmsg(
        this.#fd,
        length,
        fds,
        MSG.MSG_DONTWAIT | MSG.MSG_NOSIGNAL,
      );
      if (r >= 0 || (r !== -E.EAGAIN && r !== -E.EINTR)) return r;
      if (r === -E.EINTR) continue;
      const remaining = deadline - performance.now();
      if (remaining <= 0) return -E.EAGAIN;
      pfd.set(0, this.#fd, POLL.POLLOUT);
      const p = pfd.poll(pollWait(remaining));
      if (p < 0 && p !== -E.EINTR) return p;
    }
  }

  #sendResult(r: number, timeout: number): void {
    const action = "Cannot send message";
    if (r >= 0) return;
    if (r === -E.EAGAIN) {
      throw new IpcTimeoutError(
        `${action}: the peer has not read for ${timeout} ms (socket full)`,
        timeout,
      );
    }
    const err = new SyscallError(-r, "sendmsg", action);
    if (r === -E.EPIPE || r === -E.ECONNRESET || r === -E.ENOTCONN) {
      this.#state = "peer-closed";
      throw new IpcClosedError(`${action}: the peer closed its end`, {
        cause: err,
      });
    }
    throw err;
  }

  /**
   * Receives the next message, blocking this thread up to `timeout`.
   * A malformed frame throws {@linkcode IpcProtocolError} (its descriptors
   * closed); the next call reads the next frame.
   *
   * @param options The timeout.
   * @returns The message; the caller owns its descriptors.
   * @throws {IpcTimeoutError} Nothing arrived in time.
   * @throws {IpcClosedError} The peer hung up (after everything it sent was
   *   read), or this end is closed.
   * @throws {IpcProtocolError} The frame broke the wire format.
   * @throws {TypeError} If messages are being delivered as events.
   *
   * @example
   * ```ts
   * import { IpcUnixSocket } from "@isola/isola";
   *
   * using a = new IpcUnixSocket();
   * using b = new IpcUnixSocket();
   * b.bind(a.create());
   * b.send({});
   * using msg = a.receive({ timeout: 100 });
   * console.log(msg.data.length); // 0
   * ```
   */
  receive(options: IpcReceiveOptions = {}): IpcPayload {
    const action = "Cannot receive message";
    if (this.#state !== "peer-closed" || this.#eof) this.#checkUsable(action);
    if (this.#watching) {
      throw new TypeError(`${action}: messages are delivered as events`);
    }
    const timeout = checkTimeout(options.timeout, Infinity);
    const spin = checkTimeout(options.spin, 0);
    const deadline = performance.now() + timeout;
    if (spin > 0) {
      const until = performance.now() + Math.min(spin / 1000, timeout);
      do {
        const msg = this.#recvOnce(MSG.MSG_DONTWAIT);
        if (msg) return msg;
      } while (performance.now() < until);
    }
    const flags = timeout === Infinity ? 0 : MSG.MSG_DONTWAIT;
    const pfd = this.#pfd!;
    for (;;) {
      const msg = this.#recvOnce(flags);
      if (msg) return msg;
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw new IpcTimeoutError(
          `${action}: nothing arrived within ${timeout} ms`,
          timeout,
        );
      }
      pfd.set(0, this.#fd, POLL.POLLIN);
      const p = pfd.poll(pollWait(remaining));
      if (p < 0 && p !== -E.EINTR) {
        throw new SyscallError(-p, "poll", action);
      }
    }
  }

  /** One recvmsg: a message, `null` when nothing is queued, or a throw. */
  #recvOnce(flags: number): IpcPayload | null {
    const rx = this.#rx!;
    for (;;) {
      const n = rx.recvmsg(this.#fd, flags | MSG.MSG_CMSG_CLOEXEC);
      if (n === -E.EINTR) continue;
      if (n === -E.EAGAIN) return null;
      if (n < 0) {
        const err = new SyscallError(-n, "recvmsg", "Cannot receive message");
        if (n === -E.ECONNRESET) {
          this.#eof = true;
          this.#state = "peer-closed";
          throw new IpcClosedError("Cannot receive message: peer reset", {
            cause: err,
          });
        }
        throw err;
      }
      // End of stream reads 0 bytes and no descriptors while the peer has
      // hung up; an empty record with descriptors is a bad frame, and
      // records queued behind it are still to be read.
      if (isEndOfStream(rx, n, this.#fd)) {
        this.#eof = true;
        this.#state = "peer-closed";
        throw new IpcClosedError(
          "Cannot receive message: the peer closed its end",
        );
      }
      const frame = decodeFrame(rx, n, this.#maxSize);
      return new IpcPayload(frame.data, frame.fds.map((fd) => new OwnedFd(fd)));
    }
  }

  /**
   * Adding the first `message` listener starts event-driven delivery: from
   * then on every message is dispatched as an {@linkcode IpcMessageEvent}
   * on the event loop, in arrival order, and
   * {@linkcode IpcUnixSocket.receive} is no longer available. A pending
   * readiness wait keeps the program alive until the socket is closed or
   * the peer hangs up.
   *
   * @param type The event type listened for.
   */
  protected override onListen(type: string): void {
    if (type === "message") this.#startWatching();
  }

  #startWatching(): void {
    if (this.#watching || this.#state !== "open") return;
    this.#watching = true;
    this.#watch().catch((e) => {
      this.dispatchEvent(new IpcErrorEvent(e));
    });
  }

  async #watch(): Promise<void> {
    const pfd = new PollFds(1);
    try {
      // A send that met EPIPE makes the state peer-closed before the read
      // side sees the end: keep reading what is queued until end of stream.
      while (this.#state !== "closed" && this.#drain()) {
        pfd.set(0, this.#fd, POLL.POLLIN);
        await pfd.pollAsync(-1);
      }
    } finally {
      this.#watching = false;
      if (this.#state === "closed") this.#closeNow();
    }
  }

  /** Dispatches what is queued; false once delivery must stop. */
  #drain(): boolean {
    for (;;) {
      if (this.#state === "closed") return false;
      let msg: IpcPayload | null;
      try {
        msg = this.#recvOnce(MSG.MSG_DONTWAIT);
      } catch (e) {
        if (e instanceof IpcProtocolError) {
          this.dispatchEvent(new IpcErrorEvent(e));
          continue;
        }
        if (e instanceof IpcClosedError) {
          this.dispatchEvent(new Event("close"));
          return false;
        }
        throw e;
      }
      if (msg === null) return true;
      this.dispatchEvent(new IpcMessageEvent(msg));
    }
  }

  #closeNow(): void {
    if (this.#fd >= 0) {
      closeFd(this.#fd);
      this.#fd = -1;
    }
    this.#released.resolve();
  }

  /**
   * Closes this end; the peer sees a hang-up. Idempotent. With event
   * delivery running, the descriptor is shut down at once and closed when
   * the pending wait returns (see {@linkcode IpcUnixSocket.released}).
   */
  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    if (this.#watching) {
      shutdown(this.#fd, SOCK.SHUT_RDWR); // wakes the pending poll(2)
    } else {
      this.#closeNow();
    }
  }

  /** Closes (`using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes and waits until the descriptor is released (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#released.promise;
  }
}
