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
  E_EXIT_SEEN,
  E_EXITED,
  E_FD,
  E_GEN,
  E_INFLIGHT,
  E_LOCK,
  E_PAUSED,
  E_PIDFD,
  E_SEQ,
  E_WINDOW,
  entry,
  epollTag,
  FREE,
  MAX_BATCH,
  type ReceivedError,
  type ReceivedMessage,
  RECEIVER,
  type ReceiverEvent,
  type ReceiverInit,
  T_STOP,
  TAG_PIDFD,
  TAG_SOCKET,
  TAG_WAKE,
  tagIsCurrent,
  tagKind,
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

  // Takes pipe `idx`'s socket out of the epoll set because its window is
  // full; false if the owner delivered meanwhile (then it stays in).
  const pause = (b: number, idx: number): boolean => {
    epollCtl(init.epfd, EPOLL.EPOLL_CTL_DEL, t[b + E_FD], 0, 0, 0);
    Atomics.store(t, b + E_PAUSED, 1);
    if (
      Atomics.load(t, b + E_INFLIGHT) < t[b + E_WINDOW] &&
      Atomics.compareExchange(t, b + E_PAUSED, 1, 0) === 1
    ) {
      epollCtl(
        init.epfd,
        EPOLL.EPOLL_CTL_ADD,
        t[b + E_FD],
        EPOLL.EPOLLIN,
        idx,
        epollTag(TAG_SOCKET, t[b + E_GEN]),
      );
      return false;
    }
    return true;
  };

  // Reads what is queued on pipe `idx` (lock held) until the socket is
  // empty, the peer hung up, or the window is full.
  const drain = (idx: number): "empty" | "eof" | "paused" => {
    const b = entry(idx);
    const fd = t[b + E_FD];
    const gen = t[b + E_GEN];
    for (;;) {
      if (
        Atomics.load(t, b + E_INFLIGHT) >= t[b + E_WINDOW] && pause(b, idx)
      ) {
        return "paused";
      }
      const n = rx.recvmsg(fd, MSG.MSG_DONTWAIT | MSG.MSG_CMSG_CLOEXEC);
      if (n === -E.EINTR) continue;
      if (n === -E.EAGAIN) return "empty";
      if (n < 0 || isEndOfStream(rx, n, fd)) return "eof";
      const item = decodeItem(
        rx,
        n,
        idx,
        gen,
        Atomics.add(t, b + E_SEQ, 1),
        MAX_SIZE,
      );
      Atomics.add(t, b + E_INFLIGHT, 1);
      batch.push(item);
      if (item.type === "msg") transfer.push(item.buffer);
      if (batch.length >= MAX_BATCH) flush();
    }
  };

  // Posts what drain() read, in one message.
  const batch: (ReceivedMessage | ReceivedError)[] = [];
  const transfer: ArrayBuffer[] = [];
  const flush = () => {
    if (batch.length === 0) return;
    post({ type: "batch", items: batch.splice(0) }, transfer.splice(0));
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
      const hi = events.dataHi(i);
      const kind = tagKind(hi);
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
        if (
          kind === TAG_PIDFD && tagIsCurrent(hi, Atomics.load(t, b + E_GEN))
        ) {
          Atomics.store(t, b + E_EXITED, 1);
        }
        continue;
      }
      // Under the lock the generation is stable: an event of a removed
      // pipe whose index was reused since epoll_wait returned is dropped.
      if (!tagIsCurrent(hi, Atomics.load(t, b + E_GEN))) {
        Atomics.store(t, b + E_LOCK, FREE);
        Atomics.notify(t, b + E_LOCK);
        continue;
      }
      // Everything the peer sent before it went away is delivered first:
      // an exit seen while the window is full is reported once drained.
      if (kind === TAG_PIDFD) Atomics.store(t, b + E_EXIT_SEEN, 1);
      const state = drain(idx);
      flush();
      if (
        state === "eof" ||
        (state === "empty" && Atomics.load(t, b + E_EXIT_SEEN) !== 0)
      ) {
        forget(idx);
        post({
          type: "hangup",
          id: idx,
          gen: t[b + E_GEN],
          why: state === "eof" ? "socket" : "process",
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
