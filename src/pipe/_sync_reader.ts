// The reader of a sendSync(): the calling thread, holding the pipe's socket
// (taken from the receiver Worker), reads until the reply to its cookie
// without returning to the event loop, so nothing runs and nothing nests
// while it waits (libcamera's sendSync() re-enters the event loop and
// hangs when waits nest). It first spins on non-blocking reads (a reply
// within the window costs no wake-up of this thread), then sleeps in
// poll(2) on the socket and the peer's pidfd until the deadline.
//
// Where the one-crossing stub exists (ffi/sync_call.ts, x86_64), the call
// goes through callFast() first: the frame is written in place into this
// thread's send buffer, and one FFI call sends it, spins, sleeps, reads the
// reply and gives the socket back to the receiver. Anything unusual (a full
// socket, a dead peer, a bad frame) returns to readReply() with the lock
// still held.
import { IpcTimeoutError } from "../common/errors.ts";
import { E } from "../../ffi/errno.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import { MSG, MsgBuffers } from "../../ffi/socket.ts";
import {
  addressHalves,
  addressOf,
  receivedControl,
  SYNC_STEP,
  SyncBlock,
  syncCallStub,
} from "../../ffi/sync_call.ts";
import {
  FRAME_VERSION,
  HEADER_SIZE,
  INLINE_MAX,
  isEndOfStream,
  MAX_FDS,
  writeHeader,
} from "../ipc/_frame.ts";
import {
  decodeItem,
  MSG_HEADER,
  OWNER_GEN,
  type ReceivedError,
  type ReceivedMessage,
} from "./_receiver_shared.ts";
import type { AdaptiveSpin } from "./_adaptive_spin.ts";
import { calibrateSpin } from "./_spin_calibration.ts";
import { trace, TRACE_ON } from "../common/_trace.ts";
import { copyBytes, ViewCache } from "../common/_bytes.ts";

/** Largest message a sync reader accepts (as the receiver Worker). */
const MAX_MESSAGE_SIZE = 1 << 30;

// One receive buffer per thread: a thread is in at most one sendSync().
const shared: { rx?: MsgBuffers; pfd?: PollFds } = {};

/** Where and how long a sync call reads. */
export interface SyncRead {
  /** The pipe's socket (held by this thread). */
  fd: number;
  /** The peer's pidfd, or -1. */
  pidfd: number;
  /** The pipe's index in the receiver table (stamped on items). */
  id: number;
  /** The reply's cookie. */
  cookie: number;
  /** `performance.now()` time at which the call gives up. */
  deadline: number;
  /** The call's whole deadline in ms (for the error). */
  timeout: number;
  /** Microseconds of non-blocking reads before sleeping. */
  spin: number;
  /** What the call was (for the error). */
  action: string;
  /** The pipe's next sequence number (taken once per record read). */
  nextSeq(): number;
  /** Keeps a record that is not the reply, for in-order delivery. */
  keep(item: ReceivedMessage | ReceivedError): void;
}

/**
 * Reads until the reply to `r.cookie`.
 *
 * @returns The reply (with its sequence number), or null when the peer
 *   is gone (hung up, or its pidfd fired and the socket is drained).
 * @throws {IpcTimeoutError} At the deadline.
 */
export function readReply(r: SyncRead): ReceivedMessage | null {
  const rx = shared.rx ??= new MsgBuffers(HEADER_SIZE + INLINE_MAX, MAX_FDS);
  const pfd = shared.pfd ??= new PollFds(2);
  let exited = false;
  let spinUntil = 0;
  for (;;) {
    const n = rx.recvmsg(r.fd, MSG.MSG_DONTWAIT | MSG.MSG_CMSG_CLOEXEC);
    if (n === -E.EINTR) continue;
    if (n === -E.EAGAIN) {
      if (exited) return null; // drained what the peer sent before dying
      if (spinUntil === 0) spinUntil = performance.now() + r.spin / 1000;
      if (performance.now() < spinUntil) continue;
      const remaining = r.deadline - performance.now();
      if (remaining <= 0) {
        throw new IpcTimeoutError(
          `${r.action}: no reply to cookie ${r.cookie} within ${r.timeout} ms`,
          r.timeout,
        );
      }
      pfd.set(0, r.fd, POLL.POLLIN);
      pfd.set(1, r.pidfd, POLL.POLLIN);
      pfd.poll(remaining === Infinity ? -1 : Math.ceil(remaining));
      if (pfd.revents(1) !== 0) exited = true;
      continue;
    }
    if (n < 0 || isEndOfStream(rx, n, r.fd)) return null;
    const item = decodeItem(
      rx,
      n,
      r.id,
      OWNER_GEN,
      r.nextSeq(),
      MAX_MESSAGE_SIZE,
    );
    if (item.type === "msg" && item.cookie === r.cookie) return item;
    // An event, another call's reply or a bad frame: delivered later, in
    // order.
    r.keep(item);
  }
}

/** Largest call data the one-crossing path sends (the rest: IpcUnixSocket). */
export const FAST_DATA_MAX = INLINE_MAX - MSG_HEADER;

/** How {@linkcode callFast} ended. */
export const FAST = Object.freeze({
  /** The reply is in {@linkcode FastPath.reply}; the socket was given back. */
  DONE: 0,
  /** The request was not sent (socket full or gone): send it the slow way. */
  UNSENT: 1,
  /** Sent; read on with readReply() (the lock is held). */
  SLOW: 2,
  /** Sent; the lock was given back with a bad frame: take it again first. */
  RETAKE: 3,
  /** The reply is in {@linkcode FastPath.reply}; the lock is still held. */
  HELD: 4,
  /**
   * A reply of bytes only ({@linkcode FastPath.replyCmd},
   * {@linkcode FastPath.replyData}, {@linkcode FastPath.replySeq}); the
   * socket was given back.
   */
  PLAIN: 5,
});

/** One thread's buffers of the one-crossing path. */
export interface FastPath {
  readonly tx: MsgBuffers;
  readonly txView: DataView;
  readonly rx: MsgBuffers;
  readonly rxView: DataView;
  /** Borrowed views of `rx.data` (for {@linkcode FastCall.borrow}). */
  readonly rxViews: ViewCache;
  readonly txHdr: bigint;
  /** {@linkcode FastPath.txHdr} as u32 halves (no BigInt per call). */
  readonly txHdrLo: number;
  readonly txHdrHi: number;
  /** Frame length the send header is set up for (-1: set it up again). */
  txLength: number;
  readonly rxHdr: bigint;
  readonly block: SyncBlock;
  /** Non-blocking reads per µs of spinning (measured once). */
  readonly readsPerUs: number;
  /** The reply of the last call that ended {@linkcode FAST}.DONE. */
  reply: ReceivedMessage | null;
  /**
   * The reply of the last call that ended {@linkcode FAST}.PLAIN: its
   * own bytes, or a borrowed view of `rx.data` when the call said
   * {@linkcode FastCall.borrow}.
   */
  replyData: Uint8Array | null;
  replyCmd: number;
  replySeq: number;
  /** Whose socket the block is set up for (a FastCall, or a worker). */
  owner: object | null;
}

let fastPath: FastPath | null | undefined;

/** This thread's one-crossing path, or null where there is no stub. */
export function fastSyncPath(): FastPath | null {
  if (fastPath !== undefined) return fastPath;
  const fn = syncCallStub();
  if (fn === null) return fastPath = null;
  const tx = new MsgBuffers(HEADER_SIZE + INLINE_MAX, MAX_FDS);
  const rx = shared.rx ??= new MsgBuffers(HEADER_SIZE + INLINE_MAX, MAX_FDS);
  const block = new SyncBlock(fn);
  const txHdr = addressOf(tx.msghdr);
  const [txHdrLo, txHdrHi] = addressHalves(txHdr);
  fastPath = {
    tx,
    txView: new DataView(tx.data.buffer),
    rx,
    rxView: new DataView(rx.data.buffer),
    rxViews: new ViewCache(rx.data),
    txHdr,
    txHdrLo,
    txHdrHi,
    txLength: -1,
    rxHdr: addressOf(rx.msghdr),
    block,
    readsPerUs: calibrateSpin(block),
    reply: null,
    replyData: null,
    replyCmd: 0,
    replySeq: 0,
    owner: null,
  };
  return fastPath;
}

/** A sync call for {@linkcode callFast}. */
export interface FastCall {
  fd: number;
  pidfd: number;
  id: number;
  cmd: number;
  cookie: number;
  data: Uint8Array;
  fds: readonly number[];
  /**
   * Whether a reply of bytes only may be handed over as a view of the
   * receive buffer (valid until this thread's next receive), for a caller
   * that decodes it at once: no typed array made per call.
   */
  borrow: boolean;
  /**
   * Work for the time the reply takes (null: none): the request is then
   * sent by a crossing of its own, the work done, and the reply awaited
   * by another, unless it came already. It must not throw.
   */
  whileWaiting: (() => void) | null;
  deadline: number;
  spin: AdaptiveSpin;
  /**
   * The receiver's epoll set (-1: leave the socket out of it), and
   * addresses of lock word and counter.
   */
  epfd: number;
  lock: bigint;
  seq: bigint;
  /** epoll data of the socket (`dataHi` kind, `dataLo` pipe index). */
  tag: number;
  keep(item: ReceivedMessage | ReceivedError): void;
}

/**
 * Sends call `c` and reads its reply in one FFI crossing (more only for
 * records that are not the reply, or sleeps cut short). The caller holds
 * the pipe's lock (Receiver.lock()); the socket is in the epoll set.
 *
 * @returns A {@linkcode FAST} code.
 */
export function callFast(f: FastPath, c: FastCall): number {
  const { tx, rx, block } = f;
  const size = MSG_HEADER + c.data.length;
  writeHeader(tx.data, size, c.fds.length, 0);
  f.txView.setUint32(HEADER_SIZE, c.cmd, true);
  f.txView.setUint32(HEADER_SIZE + 4, c.cookie, true);
  copyBytes(tx.data, HEADER_SIZE + MSG_HEADER, c.data);
  const length = HEADER_SIZE + size;
  // The header stays set up while calls of one length without descriptors
  // follow each other (sendmsg(2) does not change it): no BigInt per call.
  if (length !== f.txLength || c.fds.length !== 0) {
    tx.prepareSend(length, c.fds);
    f.txLength = c.fds.length === 0 ? length : -1;
  }
  if (f.owner !== c) {
    f.owner = c;
    block.socket(c.fd, c.pidfd);
    block.receiver(c.epfd, c.id, c.tag, c.lock, c.seq);
    block.recv(f.rxHdr);
  }
  block.epoll(c.epfd); // -1 while flow control keeps the socket out
  block.sendHalves(f.txHdrLo, f.txHdrHi);
  let spinUs = c.spin.next();
  let work = c.whileWaiting;
  if (TRACE_ON) trace("call.send", c.cookie);
  for (;;) {
    const remaining = c.deadline - performance.now();
    if (remaining <= 0) return FAST.SLOW; // readReply() throws the timeout
    if (work !== null) block.wait(c.cookie, 0, 0); // send, look, come back
    else {
      block.wait(
        c.cookie,
        Math.round(spinUs * f.readsPerUs),
        remaining === Infinity ? -1 : Math.ceil(remaining),
      );
    }
    // Each crossing: the kernel shrank msg_controllen on the last read,
    // and a failed one (finishRecv) zeroed it.
    rx.prepareRecv();
    const n = rx.finishRecv(block.call());
    if (block.sent < 0) return FAST.UNSENT;
    block.sendHalves(0, 0);
    const step = block.step;
    if (work !== null) {
      // That crossing only looked.
      if (step === SYNC_STEP.IDLE) {
        const w = work;
        work = null;
        w();
        continue;
      }
      if (block.released) {
        // The reply came before the work (which is left undone): as
        // quick as a spin's catch.
        work = null;
        if (spinUs > 0) {
          c.spin.record(spinUs, true);
          spinUs = 0;
        }
      }
      // Another record came first: it is read below, and the work and
      // the spin wait for the next crossings.
    } else if (spinUs > 0) {
      c.spin.record(spinUs, step === SYNC_STEP.SPIN);
      spinUs = 0; // one spin per call: later waits are for stragglers
    }
    if (TRACE_ON) trace("call.reply", c.cookie);
    if (step === SYNC_STEP.IDLE) continue;
    if ((step !== SYNC_STEP.SPIN && step !== SYNC_STEP.POLL) || n <= 0) {
      // A dead peer, a failed read, or an empty record (end of stream?):
      // readReply() sorts them out. An empty record took a number.
      if (n === 0 && block.seq >= 0 && !isEndOfStream(rx, n, c.fd)) {
        c.keep(decodeItem(rx, n, c.id, OWNER_GEN, block.seq, MAX_MESSAGE_SIZE));
        continue;
      }
      return FAST.SLOW;
    }
    if (block.released && isPlainFrame(rx, n)) {
      // The usual reply: bytes only, read in place (one copy into bytes
      // of its own, or none for a borrowing caller).
      f.replyCmd = f.rxView.getUint32(HEADER_SIZE, true);
      f.replySeq = block.seq;
      f.replyData = c.borrow
        ? f.rxViews.view(HEADER_SIZE + MSG_HEADER, n)
        : rx.data.slice(HEADER_SIZE + MSG_HEADER, n);
      return FAST.PLAIN;
    }
    const item = decodeItem(
      rx,
      n,
      c.id,
      OWNER_GEN,
      block.seq,
      MAX_MESSAGE_SIZE,
    );
    if (item.type === "msg" && item.cookie === c.cookie) {
      f.reply = item;
      return block.released ? FAST.DONE : FAST.HELD;
    }
    c.keep(item);
    if (block.released) return FAST.RETAKE;
  }
}

/**
 * Whether the `n`-byte record in `rx` is a well-formed frame of inline
 * bytes and no descriptors, with a message header (anything else goes
 * through decodeItem(), which checks and reports every way a frame can be
 * wrong).
 */
export function isPlainFrame(rx: MsgBuffers, n: number): boolean {
  const b = rx.data;
  const size = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  return n >= HEADER_SIZE + MSG_HEADER && size === n - HEADER_SIZE &&
    b[4] === 0 && b[5] === 0 && b[6] === 0 && b[7] === FRAME_VERSION &&
    (rx.msgFlags & (MSG.MSG_TRUNC | MSG.MSG_CTRUNC)) === 0 &&
    !receivedControl(rx.msghdr);
}
