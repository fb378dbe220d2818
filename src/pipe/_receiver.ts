// The owning thread's side of the receiver Worker (_receiver_worker.ts): one
// per JavaScript realm, started with the first pipe and stopped after the
// last one is removed, however many pipes there are in between.
import { EPOLL, epollCreate, epollCtl } from "../../ffi/epoll.ts";
import { SyscallError } from "../../ffi/errno.ts";
import { eventfd, O } from "../../ffi/spawn.ts";
import { close, write } from "../../ffi/unistd.ts";
import {
  CALLER,
  E_EXITED,
  E_FD,
  E_GEN,
  E_LOCK,
  E_PIDFD,
  E_SEQ,
  entry,
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
    epollCtl(epfd, EPOLL.EPOLL_CTL_ADD, wake, EPOLL.EPOLLIN, 0, TAG_WAKE);
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
   * Starts watching socket `fd` (and `pidfd`, or -1) for `client`.
   *
   * @returns The pipe's index.
   * @throws {RangeError} With more than 1023 pipes.
   */
  add(fd: number, pidfd: number, client: ReceiverClient): number {
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
    t[b + E_GEN] = t[b + E_GEN] + 1;
    Atomics.store(t, b + E_LOCK, FREE);
    this.#clients.set(idx, client);
    const r = epollCtl(
      this.#epfd,
      EPOLL.EPOLL_CTL_ADD,
      fd,
      EPOLL.EPOLLIN,
      idx,
      TAG_SOCKET,
    );
    if (r < 0) throw new SyscallError(-r, "epoll_ctl", "Cannot open pipe");
    if (pidfd >= 0) {
      epollCtl(
        this.#epfd,
        EPOLL.EPOLL_CTL_ADD,
        pidfd,
        EPOLL.EPOLLIN | EPOLL.EPOLLONESHOT,
        idx,
        TAG_PIDFD,
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

  /** Whether the peer's pidfd fired while the caller held pipe `idx`. */
  exitedWhileHeld(idx: number): boolean {
    return Atomics.exchange(this.#table, entry(idx) + E_EXITED, 0) !== 0;
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
    epollCtl(
      this.#epfd,
      EPOLL.EPOLL_CTL_ADD,
      t[b + E_FD],
      EPOLL.EPOLLIN,
      idx,
      TAG_SOCKET,
    );
    return Atomics.exchange(t, b + E_EXITED, 0) !== 0;
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
      case "msg":
      case "error": {
        const c = this.#client(e.id, e.gen);
        if (c) c.onReceived(e);
        else if (e.type === "msg") { for (const fd of e.fds) close(fd); }
        return;
      }
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
