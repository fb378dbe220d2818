/**
 * `<sys/epoll.h>`: epoll_create1(2), epoll_ctl(2), epoll_wait(2). An epoll
 * set can be changed from any thread while another waits on it, which is
 * what lets a caller take a socket away from the receiver thread without
 * waking it.
 *
 * Wrappers return `-errno` on failure.
 *
 * @module
 */
import { errno } from "./errno.ts";
import { C, lazyLibc } from "./libc.ts";
import { epoll_event } from "./structs.ts";

/** epoll constants (identical on x86_64 and aarch64). */
export const EPOLL = Object.freeze({
  EPOLL_CLOEXEC: 0o2000000,
  EPOLL_CTL_ADD: 1,
  EPOLL_CTL_DEL: 2,
  EPOLL_CTL_MOD: 3,
  EPOLLIN: 0x1,
  EPOLLERR: 0x8,
  EPOLLHUP: 0x10,
  EPOLLRDHUP: 0x2000,
  EPOLLONESHOT: 1 << 30,
});

const libc = lazyLibc(
  {
    // int epoll_create1(int flags);
    epoll_create1: { parameters: [C.int], result: C.int },
    // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
    epoll_ctl: { parameters: [C.int, C.int, C.int, C.buf], result: C.int },
    // int epoll_wait(int epfd, struct epoll_event *events, int maxevents,
    //                int timeout);
    epoll_wait: { parameters: [C.int, C.buf, C.int, C.int], result: C.int },
  } satisfies Deno.ForeignLibraryInterface,
);

/** epoll_create1(2). Returns the descriptor or `-errno`. */
export function epollCreate(flags: number): number {
  const r = libc().epoll_create1(flags);
  return r < 0 ? -errno() : r;
}

const ctlEvent = new Uint8Array(new ArrayBuffer(epoll_event.SIZEOF));
const ctlView = new DataView(ctlEvent.buffer);

/**
 * epoll_ctl(2) with `events` and a 64-bit `data` tag given as two u32
 * halves. Returns 0 or `-errno`.
 */
export function epollCtl(
  epfd: number,
  op: number,
  fd: number,
  events: number,
  dataLo: number,
  dataHi: number,
): number {
  ctlView.setUint32(epoll_event.events, events >>> 0, true);
  ctlView.setUint32(epoll_event.data, dataLo >>> 0, true);
  ctlView.setUint32(epoll_event.data + 4, dataHi >>> 0, true);
  return libc().epoll_ctl(epfd, op, fd, ctlEvent) === 0 ? 0 : -errno();
}

/** A buffer of `struct epoll_event` for epoll_wait(2). */
export class EpollEvents {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  /** Capacity in events. */
  readonly capacity: number;

  /** @param capacity How many events one wait can return. */
  constructor(capacity: number) {
    const ab = new ArrayBuffer(epoll_event.SIZEOF * capacity);
    this.#buf = new Uint8Array(ab);
    this.#view = new DataView(ab);
    this.capacity = capacity;
  }

  /** epoll_wait(2). Returns the number of events or `-errno`. */
  wait(epfd: number, timeoutMs: number): number {
    const r = libc().epoll_wait(epfd, this.#buf, this.capacity, timeoutMs);
    return r < 0 ? -errno() : r;
  }

  /** `events` of entry `i`. */
  events(i: number): number {
    return this.#view.getUint32(
      i * epoll_event.SIZEOF + epoll_event.events,
      true,
    );
  }

  /** Low half of `data` of entry `i`. */
  dataLo(i: number): number {
    return this.#view.getUint32(
      i * epoll_event.SIZEOF + epoll_event.data,
      true,
    );
  }

  /** High half of `data` of entry `i`. */
  dataHi(i: number): number {
    return this.#view.getUint32(
      i * epoll_event.SIZEOF + epoll_event.data + 4,
      true,
    );
  }
}
