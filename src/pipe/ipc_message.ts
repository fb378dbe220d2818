/**
 * {@linkcode IpcMessage}: the pipe layer's message, a `{ cmd, cookie }`
 * header plus a payload of bytes and descriptors (libcamera's
 * `IPCMessage`). The header belongs to this layer, not to the socket (as
 * libcamera's reviewers asked of IPCUnixSocket): it travels as the first 8
 * bytes of the socket message's data.
 *
 * @module
 */
import type { IpcPayloadInit } from "../ipc/ipc_unix_socket.ts";
import { type FdLike, OwnedFd } from "../fd/owned_fd.ts";

/** Size of the message header on the wire: u32 cmd, u32 cookie (LE). */
export const IPC_MESSAGE_HEADER_SIZE = 8;

/**
 * The command number of an error reply: the worker's handler threw, and the
 * data is the UTF-8 error message. Not usable as a normal command.
 */
export const IPC_ERROR_CMD = 0xffffffff;

/**
 * The command number of a warm-up call (an `IpcPipeUnixSocket` with
 * `keepWarm`): `IpcPipeWorker` answers it with an empty reply of the same
 * command without running a handler. Not usable as a normal command.
 *
 * @example
 * ```ts
 * import { IPC_PING_CMD } from "@isola/isola";
 *
 * console.log(IPC_PING_CMD.toString(16)); // fffffffe
 * ```
 */
export const IPC_PING_CMD = 0xfffffffe;

/** Whether `cmd` is one of the pipe's own commands (error reply, ping). */
export function isReservedCmd(cmd: number): boolean {
  return cmd === IPC_ERROR_CMD || cmd === IPC_PING_CMD;
}

/** What a message is made of; every field optional. */
export interface IpcMessageInit {
  /** The command number (0 to 2^32 - 1). Default 0. */
  cmd?: number;
  /** The bytes. */
  data?: Uint8Array;
  /** Descriptors to pass (the sender keeps its own). */
  fds?: readonly FdLike[];
}

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`Invalid ${what}: ${v} (must be a u32)`);
  }
  return v;
}

/**
 * A message on an {@linkcode IpcPipeUnixSocket}. Calls carry a cookie that
 * is unique per pipe and never 0; their reply carries the same cookie.
 * Messages without reply (`sendAsync`, events) carry cookie 0, so a reply
 * can never be taken for an event (a libcamera bug).
 *
 * Received messages own their descriptors: dispose the message (`using`)
 * to close those not released.
 *
 * @example
 * ```ts
 * import { IpcMessage } from "@isola/isola";
 *
 * using msg = new IpcMessage({ cmd: 7, data: new Uint8Array([1]) });
 * console.log(msg.cmd, msg.cookie, msg.data.length); // 7 0 1
 * ```
 */
export class IpcMessage implements Disposable {
  /** The command. */
  readonly cmd: number;
  /** The cookie: 0, or the call it answers. */
  readonly cookie: number;
  /** The bytes. */
  readonly data: Uint8Array;
  /**
   * The descriptors: owned when the message was received, borrowed
   * (numbers or the caller's OwnedFds) when it is being sent.
   */
  readonly fds: readonly FdLike[];

  /**
   * Builds a message.
   *
   * @param init Command, bytes and descriptors.
   * @param cookie The cookie (set by the pipe; leave it out).
   * @throws {RangeError} If `cmd` or `cookie` is not a u32.
   */
  constructor(init: IpcMessageInit = {}, cookie = 0) {
    this.cmd = checkU32(init.cmd ?? 0, "cmd");
    this.cookie = checkU32(cookie, "cookie");
    this.data = init.data ?? new Uint8Array(0);
    this.fds = init.fds ?? [];
  }

  /**
   * The received descriptors as owned objects (empty for a message being
   * sent with plain numbers).
   */
  get ownedFds(): OwnedFd[] {
    if (this.fds.length === 0) return []; // the usual reply: no filter run
    return this.fds.filter((fd): fd is OwnedFd => fd instanceof OwnedFd);
  }

  /** Closes the owned descriptors not yet released. */
  [Symbol.dispose](): void {
    // No filtered copy: a reply is disposed once per call.
    for (const fd of this.fds) if (fd instanceof OwnedFd) fd.close();
  }
}

/** Header + data as one socket payload (internal). */
export function encodeMessage(
  cmd: number,
  cookie: number,
  data: Uint8Array,
  fds: readonly FdLike[],
): IpcPayloadInit {
  const out = new Uint8Array(IPC_MESSAGE_HEADER_SIZE + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, cmd, true);
  v.setUint32(4, cookie, true);
  out.set(data, IPC_MESSAGE_HEADER_SIZE);
  return { data: out, fds };
}
