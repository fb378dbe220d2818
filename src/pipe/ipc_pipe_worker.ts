/**
 * {@linkcode IpcPipeWorker}: the worker side of an
 * {@linkcode IpcPipeUnixSocket}, for the program running in the child.
 *
 * @module
 */
import { IpcClosedError } from "../common/errors.ts";
import {
  encodeMessage,
  IPC_ERROR_CMD,
  IpcMessage,
  type IpcMessageInit,
} from "./ipc_message.ts";
import { encodeErrorReply } from "./ipc_call_error.ts";
import {
  DEFAULT_SPIN_US,
  type IpcSendOptions,
  IpcUnixSocket,
} from "../ipc/ipc_unix_socket.ts";
import { type FdLike, OwnedFd } from "../fd/owned_fd.ts";

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
   */
  emit(msg: IpcMessageInit, options: IpcSendOptions = {}): void {
    const m = new IpcMessage(msg);
    this.#sock.send(encodeMessage(m.cmd, 0, m.data, m.fds), options);
  }

  /**
   * Serves until the parent closes the pipe.
   *
   * @param handlers Call and message handlers.
   * @returns When the parent has hung up.
   */
  serve(handlers: IpcPipeWorkerHandlers = {}): Promise<void> {
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
    const spin = options.spin ?? DEFAULT_SPIN_US;
    for (;;) {
      let payload;
      try {
        payload = this.#sock.receive({ spin });
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

  #dispatch(
    data: Uint8Array,
    fds: FdLike[],
    handlers: IpcPipeWorkerHandlers,
  ): void | Promise<void> {
    if (data.length < 8) return;
    const v = new DataView(data.buffer, data.byteOffset);
    const cmd = v.getUint32(0, true);
    const cookie = v.getUint32(4, true);
    const msg = new IpcMessage({ cmd, data: data.subarray(8), fds }, cookie);
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
      this.#reply(r.cmd, cookie, r.data, r.fds);
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
