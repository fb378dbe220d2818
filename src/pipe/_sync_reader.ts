// The reader of a sendSync(): the calling thread, holding the pipe's socket
// (taken from the receiver Worker), reads until the reply to its cookie
// without returning to the event loop, so nothing runs and nothing nests
// while it waits (libcamera's sendSync() re-enters the event loop and
// hangs when waits nest). It first spins on non-blocking reads (a reply
// within the window costs no wake-up of this thread), then sleeps in
// poll(2) on the socket and the peer's pidfd until the deadline.
import { IpcTimeoutError } from "../common/errors.ts";
import { E } from "../../ffi/errno.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import { MSG, MsgBuffers } from "../../ffi/socket.ts";
import {
  HEADER_SIZE,
  INLINE_MAX,
  isEndOfStream,
  MAX_FDS,
} from "../ipc/_frame.ts";
import {
  decodeItem,
  OWNER_GEN,
  type ReceivedError,
  type ReceivedMessage,
} from "./_receiver_shared.ts";

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
