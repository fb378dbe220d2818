/**
 * `<poll.h>`: poll(2), as a blocking call on the calling thread and as a
 * `nonblocking` call that runs on a runtime pool thread and resolves a
 * Promise (errno is not readable after the latter: it belongs to the pool
 * thread).
 *
 * @module
 */
import { errno } from "./errno.ts";
import { C, lazyLibc } from "./libc.ts";
import { pollfd } from "./structs.ts";

/** poll(2) event bits. */
export const POLL = Object.freeze({
  POLLIN: 0x1,
  POLLPRI: 0x2,
  POLLOUT: 0x4,
  POLLERR: 0x8,
  POLLHUP: 0x10,
  POLLNVAL: 0x20,
  POLLRDHUP: 0x2000,
});

const libc = lazyLibc(
  {
    // int poll(struct pollfd *fds, nfds_t nfds, int timeout);
    poll: { parameters: [C.buf, C.size_t, C.int], result: C.int },
    // The same, run on a pool thread.
    poll_async: {
      name: "poll",
      parameters: [C.buf, C.size_t, C.int],
      result: C.int,
      nonblocking: true,
    },
  } satisfies Deno.ForeignLibraryInterface,
);

/** An array of `struct pollfd` backed by one buffer that never moves. */
export class PollFds {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  /** Number of entries. */
  readonly length: number;

  /** @param length Number of `struct pollfd` entries. */
  constructor(length: number) {
    const ab = new ArrayBuffer(pollfd.SIZEOF * Math.max(length, 1));
    this.#buf = new Uint8Array(ab);
    this.#view = new DataView(ab);
    this.length = length;
  }

  /** Sets entry `i` and clears its `revents`. */
  set(i: number, fd: number, events: number): void {
    const o = i * pollfd.SIZEOF;
    this.#view.setInt32(o + pollfd.fd, fd, true);
    this.#view.setInt16(o + pollfd.events, events, true);
    this.#view.setInt16(o + pollfd.revents, 0, true);
  }

  /** `revents` of entry `i` after a poll. */
  revents(i: number): number {
    return this.#view.getUint16(i * pollfd.SIZEOF + pollfd.revents, true);
  }

  /** poll(2) on the calling thread. Returns the ready count or `-errno`. */
  poll(timeoutMs: number): number {
    const r = libc().poll(this.#buf, this.length, timeoutMs);
    return r < 0 ? -errno() : r;
  }

  /**
   * poll(2) on a pool thread. Resolves to the ready count, or -1 on failure
   * (errno cannot be read here; callers re-poll synchronously to learn it).
   */
  pollAsync(timeoutMs: number): Promise<number> {
    return libc().poll_async(this.#buf, this.length, timeoutMs);
  }
}
