// Calls waiting for room in a full socket, so that call() never blocks its
// thread: libcamera's sendAsync()/invoke paths block in the kernel (or fail
// with EAGAIN) when the worker stops reading. A queued call keeps its own
// copies of its descriptors (the caller may close theirs once call()
// returns) and is written, in order, when poll(2) on a pool thread reports
// POLLOUT; a call that settles first (deadline, AbortSignal, the worker's
// end) is dropped unsent. Anything sent after a queued call (sendSync,
// sendAsync, another call) goes after it: the blocking senders write the
// queue first, within their own deadline.
import {
  IpcClosedError,
  IpcTimeoutError,
  SyscallError,
} from "../common/errors.ts";
import { type FdLike, fdNumber, OwnedFd } from "../fd/owned_fd.ts";
import type { IpcPayloadInit, IpcUnixSocket } from "../ipc/ipc_unix_socket.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import { F, fcntl } from "../../ffi/unistd.ts";

/** Longest sleep of the writer in one poll(2), ms: bounds how long stop() waits. */
const POLL_SLICE = 20;

interface Queued {
  cookie: number;
  data: Uint8Array;
  fds: OwnedFd[];
}

/** What the queue asks of its pipe. */
export interface SendQueueOwner {
  /** Whether call `cookie` still waits (else it is dropped unsent). */
  wants(cookie: number): boolean;
  /** Call `cookie` could not be sent (its error). */
  failed(cookie: number, e: Error): void;
  /** The peer is gone (a send met the hang-up). */
  gone(): void;
}

function dup(fd: FdLike): OwnedFd {
  const r = fcntl(fdNumber(fd, "Cannot queue call"), F.F_DUPFD_CLOEXEC, 0);
  if (r < 0) throw new SyscallError(-r, "fcntl", "Cannot queue call");
  return new OwnedFd(r);
}

export class SendQueue {
  readonly #sock: IpcUnixSocket;
  readonly #owner: SendQueueOwner;
  readonly #queue: Queued[] = [];
  readonly #pfd = new PollFds(1);
  #writer: Promise<void> | null = null;
  #writing = false; // #write() runs (set and cleared synchronously)
  #stopped = false;

  constructor(sock: IpcUnixSocket, owner: SendQueueOwner) {
    this.#sock = sock;
    this.#owner = owner;
  }

  /** Calls waiting to be written. */
  get length(): number {
    return this.#queue.length;
  }

  /** Whether call `cookie` is waiting to be written. */
  has(cookie: number): boolean {
    return this.#queue.some((q) => q.cookie === cookie);
  }

  /**
   * Queues call `cookie` (its data and copies of its descriptors) and
   * starts the writer.
   *
   * @throws {SyscallError} If a descriptor cannot be duplicated.
   */
  push(cookie: number, payload: IpcPayloadInit): void {
    const fds: OwnedFd[] = [];
    try {
      for (const fd of payload.fds ?? []) fds.push(dup(fd));
    } catch (e) {
      for (const fd of fds) fd.close();
      throw e;
    }
    this.#queue.push({ cookie, data: payload.data as Uint8Array, fds });
    if (!this.#writing) this.#writer = this.#write();
  }

  /**
   * Writes the queue on this thread, blocking until `deadline`
   * (`performance.now()` time); true when it is empty.
   *
   * @throws {IpcClosedError} The peer is gone.
   */
  flushSync(deadline: number): boolean {
    while (this.#next() !== undefined) {
      const remaining = Math.max(0, deadline - performance.now());
      if (!this.#sendHead(remaining)) return false;
    }
    return true;
  }

  /** Drops every queued call unsent (closing its descriptors). */
  drop(): void {
    for (const q of this.#queue.splice(0)) for (const fd of q.fds) fd.close();
  }

  /** Stops the writer and drops the queue; resolves once the writer ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#writer;
    this.drop();
  }

  // The head of the queue after dropping settled calls.
  #next(): Queued | undefined {
    while (
      this.#queue.length > 0 && !this.#owner.wants(this.#queue[0].cookie)
    ) {
      for (const fd of this.#queue.shift()!.fds) fd.close();
    }
    return this.#queue[0];
  }

  // Sends the head within `timeout` ms: true if sent (or failed for good),
  // false if the socket stayed full. IpcClosedError goes up.
  #sendHead(timeout: number): boolean {
    const q = this.#queue[0];
    try {
      this.#sock.send({ data: q.data, fds: q.fds }, { timeout });
    } catch (e) {
      if (e instanceof IpcTimeoutError) return false;
      if (e instanceof IpcClosedError) throw e;
      this.#queue.shift();
      for (const fd of q.fds) fd.close();
      this.#owner.failed(q.cookie, e as Error);
      return true;
    }
    this.#queue.shift();
    for (const fd of q.fds) fd.close();
    return true;
  }

  async #write(): Promise<void> {
    this.#writing = true;
    try {
      while (!this.#stopped && this.#next() !== undefined) {
        try {
          if (this.#sendHead(0)) continue;
        } catch (e) {
          if (!(e instanceof IpcClosedError)) throw e;
          this.#owner.gone();
          return;
        }
        this.#pfd.set(0, this.#sock.fd, POLL.POLLOUT);
        await this.#pfd.pollAsync(POLL_SLICE);
      }
    } finally {
      this.#writing = false;
    }
  }
}
