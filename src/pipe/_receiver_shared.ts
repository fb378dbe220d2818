// What the receiver Worker and the thread that owns it share.
//
// One epoll set holds every pipe socket of the thread (and each peer's
// pidfd, one-shot). The receiver Worker sleeps in epoll_wait and reads
// whatever arrives, unless the owning thread has taken the socket for a
// synchronous call: then the owner reads it itself (no hand-off between
// threads on the critical path). Who may read a socket is decided by a
// lock word per pipe in a SharedArrayBuffer; every message read, by either
// side, takes the next sequence number of its pipe so the owner can
// dispatch them in arrival order (see _ordered_delivery.ts).
//
// Flow control: the receiver counts the items it posted that the owner has
// not yet delivered (E_INFLIGHT). At the pipe's window (E_WINDOW) it stops
// reading that socket (takes it out of the epoll set, E_PAUSED = 1), so
// the kernel's socket buffer fills and the peer's own sends block and time
// out: the owner's memory and event-loop backlog stay bounded whatever the
// peer sends. The owner, delivering, gives credits back; at half the
// window it puts the socket back. Either side may undo a pause it sees
// (compare-and-swap on E_PAUSED), and the receiver checks the count again
// after pausing, so a pause never outlives the backlog that caused it.

import type { MsgBuffers } from "../../ffi/socket.ts";
import { close } from "../../ffi/unistd.ts";
import { decodeFrame } from "../ipc/_frame.ts";
import {
  IpcProtocolError,
  type IpcProtocolErrorReason,
} from "../common/errors.ts";

/** Most pipes one thread can have open at once. */
export const MAX_PIPES = 1024;

/** Table header: [0] stop flag. */
export const T_STOP = 0;
const HEADER_INTS = 4;
const ENTRY_INTS = 12;
/** Per-pipe fields, relative to {@linkcode entry}. */
export const E_LOCK = 0; // FREE, RECEIVER or CALLER
export const E_SEQ = 1; // next sequence number
export const E_FD = 2; // socket
export const E_PIDFD = 3; // peer's pidfd or -1
export const E_GEN = 4; // generation of the index, to drop stale posts
export const E_EXITED = 5; // pidfd fired while the caller held the lock
export const E_INFLIGHT = 6; // items posted, not yet delivered by the owner
export const E_WINDOW = 7; // most items in flight before reading pauses
export const E_PAUSED = 8; // 1 while the socket is out of the epoll set
export const E_EXIT_SEEN = 9; // pidfd fired; report it once drained

/** Generation stamped on items the owner read itself (not credited). */
export const OWNER_GEN = 0;
/** The window of a pipe without flow control. */
export const UNLIMITED_WINDOW = 0x7fffffff;

export const FREE = 0;
export const RECEIVER = 1;
export const CALLER = 2;

/** Index of field 0 of pipe `idx` in the table. */
export function entry(idx: number): number {
  return HEADER_INTS + idx * ENTRY_INTS;
}

/** Ints in the table. */
export const TABLE_INTS = HEADER_INTS + MAX_PIPES * ENTRY_INTS;

/**
 * epoll data: low half = pipe index; high half = kind (`TAG_*`, 2 bits)
 * and the pipe's generation above it, so that an event epoll_wait returned
 * before its pipe was removed is not taken for the next pipe that reuses
 * the index.
 */
export const TAG_SOCKET = 0;
export const TAG_PIDFD = 1;
export const TAG_WAKE = 2;
const KIND_BITS = 2;
const KIND_MASK = (1 << KIND_BITS) - 1;

/** The high half of an epoll entry's data for a pipe of generation `gen`. */
export function epollTag(kind: number, gen: number): number {
  return ((gen << KIND_BITS) | kind) >>> 0;
}

/** The kind (`TAG_*`) of an epoll event's data high half. */
export function tagKind(hi: number): number {
  return hi & KIND_MASK;
}

/** Whether an epoll event's data high half is of generation `gen`. */
export function tagIsCurrent(hi: number, gen: number): boolean {
  return hi >>> KIND_BITS === (gen << KIND_BITS) >>> KIND_BITS;
}

/**
 * Most items the receiver posts at once: one post per read burst saves a
 * hand-off per message, and the cap keeps a burst from waiting long.
 */
export const MAX_BATCH = 64;

/** Sent once to the receiver Worker. */
export interface ReceiverInit {
  epfd: number;
  wakeFd: number;
  table: SharedArrayBuffer;
}

/** A message from a pipe's peer. `buffer` holds the body only. */
export interface ReceivedMessage {
  type: "msg";
  id: number;
  gen: number;
  seq: number;
  cmd: number;
  cookie: number;
  buffer: ArrayBuffer;
  fds: number[];
}

/** A rejected frame (it still took a sequence number). */
export interface ReceivedError {
  type: "error";
  id: number;
  gen: number;
  seq: number;
  reason: IpcProtocolErrorReason;
  detail: string;
}

/** What the receiver tells the owning thread. */
export type ReceiverEvent =
  | { type: "batch"; items: (ReceivedMessage | ReceivedError)[] }
  | { type: "hangup"; id: number; gen: number; why: "socket" | "process" }
  | { type: "stopped" }
  | { type: "fatal"; message: string };

/** Bytes of the IpcMessage header at the start of a frame's data. */
export const MSG_HEADER = 8;

/**
 * Splits a decoded frame into the pieces of a {@linkcode ReceivedMessage}
 * (or an error when the data is shorter than the message header; its fds
 * are then the caller's to close).
 */
export function splitMessage(
  data: Uint8Array,
): { cmd: number; cookie: number; buffer: ArrayBuffer } | null {
  if (data.length < MSG_HEADER) return null;
  const v = new DataView(data.buffer, data.byteOffset, data.length);
  return {
    cmd: v.getUint32(0, true),
    cookie: v.getUint32(4, true),
    buffer: (data.buffer as ArrayBuffer).slice(
      data.byteOffset + MSG_HEADER,
      data.byteOffset + data.length,
    ),
  };
}

/**
 * Turns the record `recvmsg` just put in `rx` (`n` bytes) into what the
 * pipe dispatches: a message, or a rejected frame with its descriptors
 * closed.
 */
export function decodeItem(
  rx: MsgBuffers,
  n: number,
  id: number,
  gen: number,
  seq: number,
  maxSize: number,
): ReceivedMessage | ReceivedError {
  let frame;
  try {
    frame = decodeFrame(rx, n, maxSize);
  } catch (e) {
    if (!(e instanceof IpcProtocolError)) throw e;
    return { type: "error", id, gen, seq, reason: e.reason, detail: e.detail };
  }
  const m = splitMessage(frame.data);
  if (m === null) {
    for (const fd of frame.fds) close(fd);
    return {
      type: "error",
      id,
      gen,
      seq,
      reason: "short-header",
      detail: "message shorter than its 8-byte header",
    };
  }
  return { type: "msg", id, gen, seq, ...m, fds: frame.fds };
}
