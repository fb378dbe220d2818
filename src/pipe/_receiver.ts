// The owning thread's side of the receiver Worker (_receiver_worker.ts): one
// per JavaScript realm, started with the first pipe and stopped after the
// last one is removed, however many pipes there are in between.
import { EPOLL, epollCreate, epollCtl } from "../../ffi/epoll.ts";
import { SyscallError } from "../../ffi/errno.ts";
import { eventfd, O } from "../../ffi/spawn.ts";
import { close, write } from "../../ffi/unistd.ts";
import {
  CALLER,
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
  MAX_PIPES,
  type ReceivedError,
  type ReceivedMessage,
  type ReceiverEvent,
  T_STOP,
  TABLE_INTS,
  TAG_PIDFD,
  TAG_SOCKET,
  TAG_WAKE,
  UNLIMITED_WINDOW,
} from "./_receiver_shared.ts";

/** What a pipe hears from the receiver, on the event loop. */
export interface ReceiverClient {
  /** A message or a rejected frame, with its sequence number. */
  onReceived(item: ReceivedMessage | ReceivedError): void;
  /** The peer closed its end or its process ended. */
  onHangup(why: "socket" | "process"): void;
}

const ONE = new Uint8Array(new BigUint64Array([1n]).buffer);

export class Receiver {
  static #current: Receiver | undefined;

  /** The realm's receiver, started if needed. */
  static acquire(): Receiver {
    if (Receiver.#current === undefined) Receiver.#current = new Receiver();
    return Receiver.#current;
  }

  readonly #worker: Worker;
  readonly #table: Int32Array;
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #clients = new Map<number, ReceiverClient>();
  readonly #free: number[] = [];
  #next = 1;

  private constructor() {
    const epfd = epollCreate(EPOLL.EPOLL_CLOEXEC);
    if (epfd < 0) {
      throw new SyscallError(
        -epfd,
        "epoll_create1",
        "Cannot start the IPC receiver",
      );
    }
    const wake = eventfd(0, O.O_CLOEXEC | O.O_NONBLOCK);
    if (wake < 0) {
      close(epfd);
      throw new SyscallError(-wake, "eventfd", "Cannot start the IPC receiver");
    }
    epollCtl(
      epfd,
      EPOLL.EPOLL_CTL_ADD,
      wake,
      EPOLL.EPOLLIN,
      0,
      epollTag(TAG_WAKE, 0),
    );
    this.#epfd = epfd;
    this.#wakeFd = wake;
    const table = new SharedArrayBuffer(TABLE_INTS * 4);
    this.#table = new Int32Array(table);
    this.#worker = new Worker(
      new URL("./_receiver_worker.ts", import.meta.url).href,
      { type: "module", name: "isola-receiver" },
    );
    this.#worker.onmessage = (e: MessageEvent<ReceiverEvent>) =>
      this.#dispatch(e.data);
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.#fail();
    };
    this.#worker.postMessage({ epfd, wakeFd: wake, table });
  }

  /** The shared table (the pipe reads its socket with it during sendSync). */
  get table(): Int32Array {
    return this.#table;
  }

  /**
   * Starts watching socket `fd` (and `pidfd`, or -1) for `client`, reading
   * at most `window` items ahead of {@linkcode Receiver.release}.
   *
   * @returns The pipe's index.
   * @throws {RangeError} With more than 1023 pipes.
   */
  add(
    fd: number,
    pidfd: number,
    client: ReceiverClient,
    window: number = UNLIMITED_WINDOW,
  ): number {
    const idx = this.#free.pop() ?? this.#next++;
    if (idx >= MAX_PIPES) {
      throw new RangeError(
        `Cannot open pipe: at most ${MAX_PIPES - 1} per thread`,
      );
    }
    const t = this.#table;
    const b = entry(idx);
    t[b + E_FD] = fd;
    t[b + E_PIDFD] = pidfd;
    t[b + E_SEQ] = 0;
    t[b + E_EXITED] = 0;
    t[b + E_INFLIGHT] = 0;
    t[b + E_WINDOW] = window;
    t[b + E_PAUSED] = 0;
    t[b + E_EXIT_SEEN] = 0;
    t[b + E_GEN] = t[b + E_GEN] + 1;
    Atomics.store(t, b + E_LOCK, FREE);
    this.#clients.set(idx, client);
    const gen = t[b + E_GEN];
    const r = epollCtl(
      this.#epfd,
      EPOLL.EPOLL_CTL_ADD,
      fd,
      EPOLL.EPOLLIN,
      idx,
      epollTag(TAG_SOCKET, gen),
    );
    if (r < 0) throw new SyscallError(-r, "epoll_ctl", "Cannot open pipe");
    if (pidfd >= 0) {
      epollCtl(
        this.#epfd,
        EPOLL.EPOLL_CTL_ADD,
        pidfd,
        EPOLL.EPOLLIN | EPOLL.EPOLLONESHOT,
        idx,
        epollTag(TAG_PIDFD, gen),
      );
    }
    return idx;
  }

  /**
   * Takes pipe `idx` away from the receiver: after this returns, the
   * receiver neither reads its socket nor polls its pidfd, so the caller
   * may read it, or close the descriptors. Waits (briefly) while the
   * receiver finishes a read in progress.
   */
  take(idx: number): void {
    this.lock(idx);
    epollCtl(
      this.#epfd,
      EPOLL.EPOLL_CTL_DEL,
      this.#table[entry(idx) + E_FD],
      0,
      0,
      0,
    );
  }

  /**
   * The lock half of {@linkcode Receiver.take}, for a caller that takes
   * the socket out of the epoll set itself (the one-crossing sync call,
   * ffi/sync_call.ts, which also gives it back).
   */
  lock(idx: number): void {
    const t = this.#table;
    const b = entry(idx);
    while (Atomics.compareExchange(t, b + E_LOCK, FREE, CALLER) !== FREE) {
      Atomics.wait(t, b + E_LOCK, Atomics.load(t, b + E_LOCK), 5);
    }
  }

  /** The epoll set the receiver Worker sleeps on. */
  get epfd(): number {
    return this.#epfd;
  }

  /**
   * Ends a hold that the one-crossing call ended itself (it stored the lock
   * word and put the socket back): an exit the receiver let go meanwhile
   * fires again, as in {@linkcode Receiver.give}.
   *
   * @returns Whether the peer's pidfd fired while the caller held it.
   */
  gaveBack(idx: number): boolean {
    const exited =
      Atomics.exchange(this.#table, entry(idx) + E_EXITED, 0) !== 0;
    if (exited) this.#rearmPidfd(idx);
    return exited;
  }

  /**
   * Gives pipe `idx` back to the receiver after {@linkcode Receiver.take}.
   *
   * @returns Whether the peer's pidfd fired while the caller held it.
   */
  give(idx: number): boolean {
    const t = this.#table;
    const b = entry(idx);
    Atomics.store(t, b + E_LOCK, FREE);
    // A paused socket comes back with release(), when its window has room.
    if (Atomics.load(t, b + E_PAUSED) === 0) this.#watchSocket(idx);
    const exited = Atomics.exchange(t, b + E_EXITED, 0) !== 0;
    // The receiver let the one-shot exit event go while the caller held
    // the socket: fire it again so the end is reported either way.
    if (exited) this.#rearmPidfd(idx);
    return exited;
  }

  /**
   * Gives back the credit of one item of pipe `idx` the owner has
   * delivered; at half the window, a paused socket is read again.
   */
  release(idx: number, n = 1): void {
    const t = this.#table;
    const b = entry(idx);
    const left = Atomics.sub(t, b + E_INFLIGHT, n) - n;
    if (
      left <= t[b + E_WINDOW] >> 1 &&
      Atomics.load(t, b + E_PAUSED) === 1 &&
      Atomics.compareExchange(t, b + E_PAUSED, 1, 0) === 1
    ) {
      this.#watchSocket(idx);
      // An exit the receiver saw while paused: fire its one-shot again so
      // it is reported once the socket is drained.
      if (Atomics.load(t, b + E_EXIT_SEEN) !== 0) this.#rearmPidfd(idx);
    }
  }

  #rearmPidfd(idx: number): void {
    const b = entry(idx);
    const pidfd = this.#table[b + E_PIDFD];
    if (pidfd < 0) return;
    epollCtl(
      this.#epfd,
      EPOLL.EPOLL_CTL_MOD,
      pidfd,
      EPOLL.EPOLLIN | EPOLL.EPOLLONESHOT,
      idx,
      epollTag(TAG_PIDFD, this.#table[b + E_GEN]),
    );
  }

  /** Whether pipe `idx`'s socket is out of the epoll set (window full). */
  paused(idx: number): boolean {
    return Atomics.load(this.#table, entry(idx) + E_PAUSED) === 1;
  }

  #watchSocket(idx: number): void {
    const b = entry(idx);
    epollCtl(
      this.#epfd,
      EPOLL.EPOLL_CTL_ADD,
      this.#table[b + E_FD],
      EPOLL.EPOLLIN,
      idx,
      epollTag(TAG_SOCKET, this.#table[b + E_GEN]),
    );
  }

  /** The next sequence number of pipe `idx` (the caller holds it). */
  nextSeq(idx: number): number {
    return Atomics.add(this.#table, entry(idx) + E_SEQ, 1);
  }

  /**
   * Stops watching pipe `idx` for good; its descriptors may be closed when
   * this returns. Stops the Worker after the last pipe.
   */
  remove(idx: number): void {
    if (!this.#clients.has(idx)) return;
    this.take(idx);
    const t = this.#table;
    const b = entry(idx);
    if (t[b + E_PIDFD] >= 0) {
      epollCtl(this.#epfd, EPOLL.EPOLL_CTL_DEL, t[b + E_PIDFD], 0, 0, 0);
    }
    t[b + E_GEN] = t[b + E_GEN] + 1; // posts still queued for it are dropped
    this.#clients.delete(idx);
    this.#free.push(idx);
    if (this.#clients.size === 0) this.#stop();
  }

  #dispatch(e: ReceiverEvent): void {
    switch (e.type) {
      case "batch":
        for (const item of e.items) {
          const c = this.#client(item.id, item.gen);
          if (c) c.onReceived(item);
          else if (item.type === "msg") {
            for (const fd of item.fds) close(fd);
          }
        }
        return;
      case "hangup":
        this.#client(e.id, e.gen)?.onHangup(e.why);
        return;
      case "stopped":
        this.#worker.terminate();
        close(this.#wakeFd);
        close(this.#epfd);
        return;
      case "fatal":
        this.#fail();
        return;
    }
  }

  #client(idx: number, gen: number): ReceiverClient | undefined {
    if (this.#table[entry(idx) + E_GEN] !== gen) return undefined;
    return this.#clients.get(idx);
  }

  #stop(): void {
    if (Receiver.#current === this) Receiver.#current = undefined;
    Atomics.store(this.#table, T_STOP, 1);
    write(this.#wakeFd, ONE);
  }

  #fail(): void {
    for (const c of this.#clients.values()) c.onHangup("socket");
  }
}
