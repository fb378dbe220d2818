/**
 * The errors isola throws. Caller mistakes are built-in `TypeError` /
 * `RangeError`; what a caller may want to catch has a class here.
 *
 * @module
 */
export { SyscallError } from "../../ffi/errno.ts";

/**
 * The other end of an IPC channel is gone (it closed its socket, or its
 * process died), or this end was closed.
 *
 * @example
 * ```ts
 * import { IpcClosedError, IpcUnixSocket } from "@isola/isola";
 *
 * const sock = new IpcUnixSocket();
 * sock.create().close(); // drop the other end at once
 * try {
 *   sock.receive();
 * } catch (e) {
 *   console.log(e instanceof IpcClosedError); // true
 * }
 * sock.close();
 * ```
 */
export class IpcClosedError extends Error {
  /**
   * Builds the object.
   *
   * @param message What could not be done and why.
   * @param options The underlying error, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "IpcClosedError";
  }
}

/**
 * A wait ran past its deadline: a send to a peer that does not read, a
 * receive that got nothing, or a call without a reply.
 *
 * @example
 * ```ts
 * import { IpcTimeoutError, IpcUnixSocket } from "@isola/isola";
 *
 * using sock = new IpcUnixSocket();
 * using _peer = sock.create();
 * try {
 *   sock.receive({ timeout: 10 });
 * } catch (e) {
 *   console.log(e instanceof IpcTimeoutError, (e as IpcTimeoutError).timeout); // true 10
 * }
 * ```
 */
export class IpcTimeoutError extends Error {
  /** The deadline that passed, in milliseconds. */
  readonly timeout: number;

  /**
   * Builds the object.
   *
   * @param message What could not be done.
   * @param timeout The deadline, in milliseconds.
   */
  constructor(message: string, timeout: number) {
    super(message);
    this.name = "IpcTimeoutError";
    this.timeout = timeout;
  }
}

/** Why a received frame was rejected; see {@linkcode IpcProtocolError}. */
export type IpcProtocolErrorReason =
  | "short-header"
  | "bad-version"
  | "length-mismatch"
  | "fd-count-mismatch"
  | "too-large"
  | "data-truncated"
  | "fds-truncated"
  | "unsealed-payload";

/**
 * The peer sent a frame that breaks the wire format (see `docs/wire.md`).
 * The frame is dropped whole and every descriptor that came with it is
 * closed; the next frame is read normally.
 *
 * @example
 * ```ts
 * import { IpcProtocolError } from "@isola/isola";
 *
 * const e = new IpcProtocolError("short-header", "frame of 3 bytes");
 * console.log(e.reason); // "short-header"
 * ```
 */
export class IpcProtocolError extends Error {
  /** Which rule the frame broke. */
  readonly reason: IpcProtocolErrorReason;
  /** What was seen. */
  readonly detail: string;

  /**
   * Builds the object.
   *
   * @param reason Which rule the frame broke.
   * @param detail What was seen.
   */
  constructor(reason: IpcProtocolErrorReason, detail: string) {
    super(`Cannot receive message: bad frame (${reason}): ${detail}`);
    this.name = "IpcProtocolError";
    this.reason = reason;
    this.detail = detail;
  }
}
