/**
 * A whole synchronous round trip in one FFI crossing (x86_64): remove the
 * socket from the receiver's epoll set, sendmsg(2) the call, spin on
 * non-blocking recvmsg(2), sleep in poll(2) on the socket and the peer's
 * pidfd, recvmsg(2) the reply, take its sequence number, and when it is the
 * awaited reply give the socket back (lock word, epoll_ctl ADD). The same
 * code with no send and no lock is a worker's "wait for the next message"
 * (and with a send, "reply, then wait").
 *
 * Why: after an idle frame period (33 ms) every FFI crossing runs cold
 * (~10-45 µs each here, docs/performance.md); the old path made five or six
 * per call. The code is the 472 bytes of `sync_call_x86_64.S`, placed in an
 * anonymous page that is then made read + execute, as `raw_syscall.ts`.
 * Elsewhere {@linkcode syncCallStub} is null and callers take the path of
 * separate calls.
 *
 * @module
 */
import { mapCode } from "./spawn.ts";
import { C, lazyLibc } from "./libc.ts";
import { epoll_event, msghdr, pollfd } from "./structs.ts";

/** The machine code of `ffi/sync_call_x86_64.S`, hex. */
const CODE_HEX =
  "415731c031d24989f84156415541545553488b5f20488b6f084c8b7328488947" +
  "604889477048c74778ffffffff48899780000000488b3f4885ff781949837848" +
  "0074124531d2b8e9000000be020000004889ea0f05498b70184885f674224531" +
  "d2b82e000000ba404000004889ef0f05498940604989c14885c00f88ba000000" +
  "4d8b782841bc2f00000041bd400000404c8973284531d24c89e04889ef4889de" +
  "4c89ea0f054883f8f5757e498b40704939c77e0b48ffc049894070f390ebd149" +
  "8b7838498b50304531d2b807000000be0200000066c74706000066c7470e0000" +
  "0f054989c14885c0785066837f0e000f85be0000004885c0750ab803000000e9" +
  "b40000004c8973284531d24c89e04889ef4889de4c89ea0f054989c1b8020000" +
  "004983f9f5750aebd14989c1b801000000498940684d85c9790a49c740680500" +
  "0000eb7f498b40504885c07410ba01000000f00fc1104863c249894078498b50" +
  "404983f90f7e5c4885d278578b433083e028754f488b4b10488b0939510c7543" +
  "498b50484885d2743a8702498b384885ff78134d8b5058b8e9000000be010000" +
  "004889ea0f0549c7808000000001000000eb10b8040000004989406849c7c1f5" +
  "ffffff5b4c89c85d4d898888000000415c415d415e415fc3";

/** The machine code of `ffi/sync_call_x86_64.S`. */
export const SYNC_CALL_X86_64_CODE: Uint8Array = Uint8Array.from(
  CODE_HEX.match(/../g)!,
  (h) => parseInt(h, 16),
);

/**
 * Byte offsets of the block the stub reads and writes (all 8-byte fields;
 * pointers are addresses of buffers that never move).
 */
export const sync_block = Object.freeze({
  epfd: 0, // in: epoll set to take `fd` out of and put back in, or -1
  fd: 8, // in: the socket
  send_hdr: 24, // in: struct msghdr * to sendmsg first, or 0
  recv_hdr: 32, // in: struct msghdr * to recvmsg into
  spin: 40, // in: non-blocking reads before sleeping
  timeout: 48, // in: poll(2) timeout, ms (-1: none)
  pollfds: 56, // in: struct pollfd[2]: the socket, the peer's pidfd or -1
  cookie: 64, // in: cookie of the awaited reply, or -1 (any record)
  lock: 72, // in: int * lock word, stored 0 once the reply is read; or 0
  seq: 80, // in: int * sequence counter, +1 per record read; or 0
  add_event: 88, // in: struct epoll_event * for EPOLL_CTL_ADD
  sent: 96, // out: sendmsg's result
  step: 104, // out: SYNC_STEP
  spun: 112, // out: non-blocking reads that found nothing
  seq_out: 120, // out: the record's sequence number, or -1
  released: 128, // out: 1 when the lock was given back
  result: 136, // out: what it returned: bytes received, or -errno
  SIZEOF: 144,
});

/** Where the stub stopped (`sync_block.step`). */
export const SYNC_STEP = Object.freeze({
  /** A record arrived while spinning. */
  SPIN: 1,
  /** A record arrived after sleeping in poll(2). */
  POLL: 2,
  /** Nothing arrived before the timeout. */
  IDLE: 3,
  /** The peer's pidfd fired (its process ended); nothing was read. */
  PEER_EXITED: 4,
  /** A system call failed; the result is its -errno. */
  FAILED: 5,
});

const EPOLLIN = 0x1;
/** bsearch(3) over one element of one byte. */
const ONE = 1n;
const MAX_INT = 0x7fffffff;
const POLLIN = 0x1;

const libc = lazyLibc(
  {
    // void *bsearch(const void *key, const void *base, size_t nmemb,
    //               size_t size, int (*compar)(const void *, const void *));
    bsearch: {
      parameters: [C.buf, C.buf, C.size_t, C.size_t, C.ptr],
      result: C.ptr,
    },
  } satisfies Deno.ForeignLibraryInterface,
);

/** Runs the stub on a block; the result is also in the block. */
export type StubFn = (block: Uint8Array) => void;
let stub: StubFn | null | undefined;

/**
 * The stub, or null where there is none (not x86_64 Linux, or the page
 * cannot be made executable). Made once per JavaScript realm.
 *
 * It is called through bsearch(3) over one element, which calls its
 * comparison function once with (key, element) = (block, block): a call of
 * a libc symbol takes V8's fast path for FFI calls, while a call through
 * `Deno.UnsafeFnPointer` goes through a general path that runs far more
 * code (a cold `sendmsg` through such a pointer: 44 µs, a cold libc call:
 * 9-13 µs, measured here). bsearch ignores what the stub returns but for
 * its sign, so the stub also stores it in the block.
 */
export function syncCallStub(): StubFn | null {
  if (stub !== undefined) return stub;
  stub = null;
  if (Deno.build.arch !== "x86_64" || Deno.build.os !== "linux") return null;
  const page = mapCode(SYNC_CALL_X86_64_CODE);
  if (typeof page === "number") return null;
  const bsearch = libc().bsearch;
  stub = (block) => {
    bsearch(block, block, ONE, ONE, page);
  };
  return stub;
}

/**
 * The address of a buffer that never moves (an explicit ArrayBuffer or a
 * SharedArrayBuffer, or a view of one), for the block's pointer fields.
 */
export function addressOf(buf: ArrayBufferLike | ArrayBufferView): bigint {
  // A SharedArrayBuffer view is accepted at run time (a fixed address).
  return BigInt(
    Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as BufferSource)),
  );
}

/**
 * The low and high u32 halves of an address (for
 * {@linkcode SyncBlock.sendHalves}), as int32 bit patterns.
 */
export function addressHalves(address: bigint): [lo: number, hi: number] {
  return [
    Number(BigInt.asIntN(32, address)),
    Number(BigInt.asIntN(32, address >> 32n)),
  ];
}

/**
 * Whether the kernel wrote any control message (descriptors) into the
 * `struct msghdr` `hdr` on its last recvmsg(2): `msg_controllen` is not 0.
 * Reads bytes, so a per-call path allocates nothing.
 */
export function receivedControl(hdr: Uint8Array): boolean {
  let any = 0;
  for (let i = 0; i < 8; i++) any |= hdr[msghdr.msg_controllen + i];
  return any !== 0;
}

/**
 * One block for the stub, with its pollfd pair and epoll_event, in buffers
 * that never move. Set the inputs once (they persist), then
 * {@linkcode SyncBlock.call} as often as needed.
 */
export class SyncBlock {
  readonly #buf: Uint8Array;
  // Fields are written and read as two 32-bit halves: BigInt conversions
  // would allocate on every call.
  readonly #i32: Int32Array;
  readonly #view: DataView;
  readonly #pollView: DataView;
  readonly #pollAddr: bigint;
  readonly #eventView: DataView;
  readonly #fn: StubFn;

  /** @param fn The stub ({@linkcode syncCallStub}). */
  constructor(fn: StubFn) {
    this.#fn = fn;
    const ab = new ArrayBuffer(sync_block.SIZEOF);
    this.#buf = new Uint8Array(ab);
    this.#i32 = new Int32Array(ab);
    this.#view = new DataView(ab);
    const polls = new ArrayBuffer(pollfd.SIZEOF * 2);
    this.#pollView = new DataView(polls);
    this.#pollAddr = addressOf(polls);
    const ev = new ArrayBuffer(epoll_event.SIZEOF);
    this.#eventView = new DataView(ev);
    this.#set(sync_block.pollfds, this.#pollAddr);
    this.#set(sync_block.add_event, addressOf(ev));
    this.#setInt(sync_block.epfd, -1);
    this.#setInt(sync_block.cookie, -1);
    this.#setInt(sync_block.timeout, -1);
  }

  #set(off: number, v: bigint): void {
    this.#view.setBigInt64(off, v, true);
  }

  /** Field at `off` = `v`, an integer in [-2^31, 2^32). */
  #setInt(off: number, v: number): void {
    const i = off >> 2;
    this.#i32[i] = v | 0;
    this.#i32[i + 1] = v < 0 ? -1 : 0;
  }

  /** The low 32 bits of the field at `off`, signed (results fit). */
  #get(off: number): number {
    return this.#i32[off >> 2];
  }

  /** The socket, and the peer's pidfd (or -1) watched while sleeping. */
  socket(fd: number, pidfd: number): void {
    this.#setInt(sync_block.fd, fd);
    const p = this.#pollView;
    p.setInt32(pollfd.fd, fd, true);
    p.setInt16(pollfd.events, POLLIN, true);
    p.setInt32(pollfd.SIZEOF + pollfd.fd, pidfd, true);
    p.setInt16(pollfd.SIZEOF + pollfd.events, POLLIN, true);
  }

  /**
   * The receiver's epoll set (-1: none) and how the socket is put back in
   * it (`EPOLLIN`, data `dataLo`/`dataHi`), with the addresses of the lock
   * word and the sequence counter ({@linkcode addressOf}; 0n: none).
   */
  receiver(
    epfd: number,
    dataLo: number,
    dataHi: number,
    lock: bigint,
    seq: bigint,
  ): void {
    this.#setInt(sync_block.epfd, epfd);
    this.#set(sync_block.lock, lock);
    this.#set(sync_block.seq, seq);
    const e = this.#eventView;
    e.setUint32(epoll_event.events, EPOLLIN, true);
    e.setUint32(epoll_event.data, dataLo >>> 0, true);
    e.setUint32(epoll_event.data + 4, dataHi >>> 0, true);
  }

  /**
   * The epoll set alone (-1: none, the socket is left where it is), for a
   * call whose socket is out of the set already.
   */
  epoll(epfd: number): void {
    this.#setInt(sync_block.epfd, epfd);
  }

  /** Address of the `struct msghdr` to send first (0n: only wait). */
  send(msghdr: bigint): void {
    this.#set(sync_block.send_hdr, msghdr);
  }

  /**
   * {@linkcode SyncBlock.send} with the address as two u32 halves (see
   * {@linkcode addressHalves}), for a per-call path: no BigInt is read or
   * written. `(0, 0)`: only wait.
   */
  sendHalves(lo: number, hi: number): void {
    const i = sync_block.send_hdr >> 2;
    this.#i32[i] = lo;
    this.#i32[i + 1] = hi;
  }

  /** Address of the `struct msghdr` to receive into. */
  recv(msghdr: bigint): void {
    this.#set(sync_block.recv_hdr, msghdr);
  }

  /**
   * What to wait for: the reply with `cookie` (a u32, or -1: any record),
   * spinning `spin` reads, then sleeping up to `timeoutMs` (-1: no limit;
   * longer than 2^31 - 1 ms is cut to that).
   */
  wait(cookie: number, spin: number, timeoutMs: number): void {
    this.#setInt(sync_block.cookie, cookie);
    this.#setInt(sync_block.spin, Math.min(spin, MAX_INT));
    this.#setInt(sync_block.timeout, Math.min(timeoutMs, MAX_INT));
  }

  /** Runs the stub: bytes received, or -errno. */
  call(): number {
    this.#fn(this.#buf);
    return this.#get(sync_block.result);
  }

  /** sendmsg's result of the last call (0 without a send). */
  get sent(): number {
    return this.#get(sync_block.sent);
  }

  /** Where the last call stopped ({@linkcode SYNC_STEP}). */
  get step(): number {
    return this.#get(sync_block.step);
  }

  /** Non-blocking reads of the last call that found nothing. */
  get spun(): number {
    return this.#get(sync_block.spun);
  }

  /** Sequence number of the record read, or -1. */
  get seq(): number {
    return this.#get(sync_block.seq_out);
  }

  /** Whether the last call gave the lock back (it read the reply). */
  get released(): boolean {
    return this.#get(sync_block.released) === 1;
  }
}
