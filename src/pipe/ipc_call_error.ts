/**
 * {@linkcode IpcCallError}: what a pipe worker's call handler throws to
 * send an error code with its message, and the error reply that carries
 * both (`IPC_ERROR_CMD`, see docs/wire.md). Loaded by both ends.
 *
 * @module
 */

/** Bytes of the error code at the start of an error reply's data (u32 LE). */
export const ERROR_CODE_SIZE = 4;

/** The code of an error reply whose handler threw anything but an IpcCallError. */
export const IPC_ERROR_UNSPECIFIED = 0;

/**
 * An error with a code, for an {@linkcode IpcPipeWorker} call handler to
 * throw: the caller gets an `IpcRemoteError` with the same `code` and the
 * message as `remoteMessage`, so it can tell errors apart by number rather
 * than by their wording. Any other throw arrives with code 0.
 *
 * @example A handler refusing a call with a code
 * ```ts
 * import { IpcCallError } from "@isola/isola";
 *
 * const NO_SUCH_BUFFER = 17;
 * const e = new IpcCallError(NO_SUCH_BUFFER, "no buffer 9");
 * console.log(e.code, e.message); // 17 "no buffer 9"
 * ```
 */
export class IpcCallError extends Error {
  /** The code sent to the caller (a u32, not 0). */
  readonly code: number;

  /**
   * Builds the error.
   *
   * @param code A u32 other than 0 that the caller classifies by.
   * @param message The text sent with it.
   * @throws {RangeError} If `code` is 0 or not a u32.
   */
  constructor(code: number, message: string) {
    if (!Number.isInteger(code) || code <= 0 || code > 0xffffffff) {
      throw new RangeError(
        `Invalid code: ${code} (must be a u32 other than 0)`,
      );
    }
    super(message);
    this.name = "IpcCallError";
    this.code = code;
  }
}

/** The data of an error reply for a handler's throw: u32 code, UTF-8 text. */
export function encodeErrorReply(e: unknown): Uint8Array {
  const code = e instanceof IpcCallError ? e.code : IPC_ERROR_UNSPECIFIED;
  const text = new TextEncoder().encode(
    e instanceof Error ? e.message : String(e),
  );
  const out = new Uint8Array(ERROR_CODE_SIZE + text.length);
  new DataView(out.buffer).setUint32(0, code, true);
  out.set(text, ERROR_CODE_SIZE);
  return out;
}

/** The code and text of an error reply's data (code 0 if it is too short). */
export function decodeErrorReply(
  data: Uint8Array,
): { code: number; text: string } {
  if (data.length < ERROR_CODE_SIZE) {
    return {
      code: IPC_ERROR_UNSPECIFIED,
      text: new TextDecoder().decode(data),
    };
  }
  const v = new DataView(data.buffer, data.byteOffset, data.length);
  return {
    code: v.getUint32(0, true),
    text: new TextDecoder().decode(data.subarray(ERROR_CODE_SIZE)),
  };
}
