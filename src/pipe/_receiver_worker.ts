// The receiver Worker: reads every pipe socket of the thread that started
// it, unless that thread holds the pipe's lock for a synchronous call, and
// posts what it reads (events, replies to Promise calls, late replies,
// hang-ups) to the owner's event loop. See _receiver_shared.ts.
import { EPOLL, epollCtl, EpollEvents } from "../../ffi/epoll.ts";
import { E } from "../../ffi/errno.ts";
import { MSG, MsgBuffers } from "../../ffi/socket.ts";
import { read } from "../../ffi/unistd.ts";
import {
  HEADER_SIZE,
  INLINE_MAX,
  isEndOfStream,
  MAX_FDS,
} from "../ipc/_frame.ts";
import {
  decodeItem,
  E_EXITED,
  E_FD,
  E_GEN,
  E_LOCK,
  E_PIDFD,
  E_SEQ,
  entry,
  FREE,
  RECEIVER,
  type ReceiverEvent,
  type ReceiverInit,
  T_STOP,
  TAG_PIDFD,
  TAG_WAKE,
} from "./_receiver_shared.ts";

declare const self: {
  onmessage: ((e: MessageEvent<ReceiverInit>) => void) | null;
  postMessage(msg: ReceiverEvent, transfer?: Transferable[]): void;
};

const MAX_SIZE = 1 << 30;

function run(init: ReceiverInit): void {
  const t = new Int32Array(init.table);
  const rx = new MsgBuffers(HEADER_SIZE + INLINE_MAX, MAX_FDS);
  const events = new EpollEvents(64);
  const wakeBuf = new Uint8Array(8);
  const post = (e: ReceiverEvent, transfer?: Transferable[]) =>
    self.postMessage(e, transfer);

  const forget = (idx: number) => {
    const b = entry(idx);
    epollCtl(init.epfd, EPOLL.EPOLL_CTL_DEL, t[b + E_FD], 0, 0, 0);
    if (t[b + E_PIDFD] >= 0) {
      epollCtl(init.epfd, EPOLL.EPOLL_CTL_DEL, t[b + E_PIDFD], 0, 0, 0);
    }
  };

  // Reads all that is queued on pipe `idx` (lock held); false at hang-up.
  const drain = (idx: number): boolean => {
    const b = entry(idx);
    const fd = t[b + E_FD];
    const gen = t[b + E_GEN];
    for (;;) {
      const n = rx.recvmsg(fd, MSG.MSG_DONTWAIT | MSG.MSG_CMSG_CLOEXEC);
      if (n === -E.EINTR) continue;
      if (n === -E.EAGAIN) return true;
      if (n < 0 || isEndOfStream(rx, n, fd)) return false;
      const item = decodeItem(
        rx,
        n,
        idx,
        gen,
        Atomics.add(t, b + E_SEQ, 1),
        MAX_SIZE,
      );
      if (item.type === "msg") post(item, [item.buffer]);
      else post(item);
    }
  };

  for (;;) {
    const n = events.wait(init.epfd, -1);
    if (n === -E.EINTR) continue;
    if (n < 0) {
      post({ type: "fatal", message: `epoll_wait failed: errno ${-n}` });
      return;
    }
    for (let i = 0; i < n; i++) {
      const idx = events.dataLo(i);
      const kind = events.dataHi(i);
      if (kind === TAG_WAKE) {
        read(init.wakeFd, wakeBuf);
        if (Atomics.load(t, T_STOP) !== 0) {
          post({ type: "stopped" });
          return;
        }
        continue;
      }
      const b = entry(idx);
      if (Atomics.compareExchange(t, b + E_LOCK, FREE, RECEIVER) !== FREE) {
        // The owner reads it for a sync call (and re-arms it after), or the
        // pipe is being removed. A pidfd event is one-shot: leave a note.
        if (kind === TAG_PIDFD) Atomics.store(t, b + E_EXITED, 1);
        continue;
      }
      // Everything the peer sent before it went away is delivered first.
      const alive = drain(idx);
      if (!alive || kind === TAG_PIDFD) {
        forget(idx);
        post({
          type: "hangup",
          id: idx,
          gen: t[b + E_GEN],
          why: alive ? "process" : "socket",
        });
      }
      Atomics.store(t, b + E_LOCK, FREE);
      Atomics.notify(t, b + E_LOCK);
    }
  }
}

self.onmessage = (e) => {
  self.onmessage = null;
  run(e.data);
};
