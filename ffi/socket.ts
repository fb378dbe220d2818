/**
 * `<sys/socket.h>`: socketpair(2), sendmsg(2), recvmsg(2), shutdown(2),
 * getsockopt(2)/setsockopt(2), and {@linkcode MsgBuffers}, the preallocated
 * `msghdr` + `iovec` + control buffer one socket end sends or receives with.
 *
 * The wrappers return `-errno` on failure so the caller can retry `EINTR`,
 * wait on `EAGAIN`, and word the error itself. `sendmsg`/`recvmsg` of
 * {@linkcode MsgBuffers} go through raw system calls where available
 * (`raw_syscall.ts`): their error cannot be clobbered before it is read.
 *
 * @module
 */
import { errno } from "./errno.ts";
import { rawSocketCalls } from "./raw_syscall.ts";
import { C, lazyLibc } from "./libc.ts";
import {
  CMSG_DATA_OFFSET,
  CMSG_LEN,
  CMSG_SPACE,
  cmsghdr,
  iovec,
  msghdr,
} from "./structs.ts";

/** Address and socket constants (identical on x86_64 and aarch64). */
export const SOCK = Object.freeze({
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_SEQPACKET: 5,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_TYPE: 3,
  SCM_RIGHTS: 1,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
});

/** `MSG_*` flags for sendmsg/recvmsg and in `msg_flags`. */
export const MSG = Object.freeze({
  MSG_CTRUNC: 0x8,
  MSG_TRUNC: 0x20,
  MSG_DONTWAIT: 0x40,
  MSG_EOR: 0x80,
  MSG_NOSIGNAL: 0x4000,
  MSG_CMSG_CLOEXEC: 0x40000000,
});

/** The kernel's limit of descriptors in one SCM_RIGHTS message (SCM_MAX_FD). */
export const SCM_MAX_FD = 253;

const libc = lazyLibc(
  {
    // int socketpair(int domain, int type, int protocol, int sv[2]);
    socketpair: { parameters: [C.int, C.int, C.int, C.buf], result: C.int },
    // ssize_t sendmsg(int sockfd, const struct msghdr *msg, int flags);
    sendmsg: { parameters: [C.int, C.buf, C.int], result: C.ssize_t },
    // ssize_t recvmsg(int sockfd, struct msghdr *msg, int flags);
    recvmsg: { parameters: [C.int, C.buf, C.int], result: C.ssize_t },
    // int shutdown(int sockfd, int how);
    shutdown: { parameters: [C.int, C.int], result: C.int },
    // int getsockopt(int sockfd, int level, int optname, void *optval,
    //                socklen_t *optlen);
    getsockopt: {
      parameters: [C.int, C.int, C.int, C.buf, C.buf],
      result: C.int,
    },
    // int setsockopt(int sockfd, int level, int optname, const void *optval,
    //                socklen_t optlen);
    setsockopt: {
      parameters: [C.int, C.int, C.int, C.buf, C.uint],
      result: C.int,
    },
  } satisfies Deno.ForeignLibraryInterface,
);

/**
 * socketpair(2). Returns the two descriptors, or `-errno`.
 */
export function socketpair(
  domain: number,
  type: number,
  protocol = 0,
): [number, number] | number {
  const sv = new Int32Array(2);
  if (libc().socketpair(domain, type, protocol, sv) !== 0) return -errno();
  return [sv[0], sv[1]];
}

/** shutdown(2). Returns 0 or `-errno`. */
export function shutdown(fd: number, how: number): number {
  return libc().shutdown(fd, how) === 0 ? 0 : -errno();
}

/** getsockopt(2) for an `int` option. Returns the value, or `-errno`. */
export function getsockoptInt(fd: number, level: number, name: number): number {
  const val = new Int32Array(1);
  const len = new Uint32Array([4]);
  if (libc().getsockopt(fd, level, name, val, len) !== 0) return -errno();
  return val[0];
}

/** setsockopt(2) for an `int` option. Returns 0 or `-errno`. */
export function setsockoptInt(
  fd: number,
  level: number,
  name: number,
  value: number,
): number {
  const val = new Int32Array([value]);
  return libc().setsockopt(fd, level, name, val, 4) === 0 ? 0 : -errno();
}

function address(buf: ArrayBuffer): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * One `msghdr` with a single `iovec` over {@linkcode MsgBuffers.data} and a
 * control buffer for up to `maxFds` descriptors. The struct and every buffer
 * it points at are allocated together here and live as long as this object,
 * so the pointers stored in the struct stay valid across each call.
 */
export class MsgBuffers {
  /** The bytes the iovec points at: fill before `sendmsg`, read after `recvmsg`. */
  readonly data: Uint8Array;
  /** How many descriptors the control buffer can carry. */
  readonly maxFds: number;
  /** `msg_flags` after the last {@linkcode MsgBuffers.recvmsg}. */
  msgFlags = 0;

  #hdr: Uint8Array;
  #hdrView: DataView;
  #iovView: DataView;
  #control: Uint8Array;
  #controlView: DataView;
  #controlAddr: bigint;
  // Sizes as the bigints the header takes (no conversion per read).
  #dataLen: bigint;
  #controlLen: bigint;

  /**
   * @param capacity Size of the data buffer in bytes.
   * @param maxFds Capacity of the control buffer, in descriptors.
   */
  constructor(capacity: number, maxFds: number) {
    // Explicit ArrayBuffers are allocated off the V8 heap and never move.
    const dataBuf = new ArrayBuffer(Math.max(capacity, 1));
    this.data = new Uint8Array(dataBuf, 0, capacity);
    this.maxFds = maxFds;
    const iovBuf = new ArrayBuffer(iovec.SIZEOF);
    this.#iovView = new DataView(iovBuf);
    this.#iovView.setBigUint64(iovec.iov_base, address(dataBuf), true);
    const controlBuf = new ArrayBuffer(Math.max(CMSG_SPACE(4 * maxFds), 16));
    this.#control = new Uint8Array(controlBuf);
    this.#controlView = new DataView(controlBuf);
    this.#controlAddr = address(controlBuf);
    this.#dataLen = BigInt(capacity);
    this.#controlLen = BigInt(this.#control.length);
    const hdrBuf = new ArrayBuffer(msghdr.SIZEOF);
    this.#hdr = new Uint8Array(hdrBuf);
    this.#hdrView = new DataView(hdrBuf);
    this.#hdrView.setBigUint64(msghdr.msg_iov, address(iovBuf), true);
    this.#hdrView.setBigUint64(msghdr.msg_iovlen, 1n, true);
  }

  /**
   * sendmsg(2) of `data[0, length)` with `fds` attached as SCM_RIGHTS.
   * Returns the bytes sent, or `-errno`.
   */
  sendmsg(
    fd: number,
    length: number,
    fds: ArrayLike<number>,
    flags: number,
  ): number {
    if (!this.prepareSend(length, fds)) return -22; // EINVAL; callers check
    const raw = rawSocketCalls();
    if (raw !== null) return raw.sendmsg(fd, this.#hdr, flags);
    const n = Number(libc().sendmsg(fd, this.#hdr, flags));
    return n < 0 ? -errno() : n;
  }

  /**
   * The `struct msghdr` itself, for code that issues the system call in
   * its own way (`sync_call.ts`): after {@linkcode MsgBuffers.prepareSend}
   * or {@linkcode MsgBuffers.prepareRecv}.
   */
  get msghdr(): Uint8Array {
    return this.#hdr;
  }

  /**
   * Sets the header up to send `data[0, length)` with `fds`, as
   * {@linkcode MsgBuffers.sendmsg} does. Returns false if there are more
   * descriptors than the control buffer holds.
   */
  prepareSend(length: number, fds: ArrayLike<number>): boolean {
    if (fds.length > this.maxFds) return false;
    this.#iovView.setBigUint64(iovec.iov_len, BigInt(length), true);
    const h = this.#hdrView;
    if (fds.length === 0) {
      h.setBigUint64(msghdr.msg_control, 0n, true);
      h.setBigUint64(msghdr.msg_controllen, 0n, true);
    } else {
      const c = this.#controlView;
      c.setBigUint64(cmsghdr.cmsg_len, BigInt(CMSG_LEN(4 * fds.length)), true);
      c.setInt32(cmsghdr.cmsg_level, SOCK.SOL_SOCKET, true);
      c.setInt32(cmsghdr.cmsg_type, SOCK.SCM_RIGHTS, true);
      for (let i = 0; i < fds.length; i++) {
        c.setInt32(CMSG_DATA_OFFSET + 4 * i, fds[i], true);
      }
      h.setBigUint64(msghdr.msg_control, this.#controlAddr, true);
      h.setBigUint64(
        msghdr.msg_controllen,
        BigInt(CMSG_SPACE(4 * fds.length)),
        true,
      );
    }
    return true;
  }

  /**
   * recvmsg(2) into {@linkcode MsgBuffers.data}. Returns the bytes received
   * (0 at end of stream), or `-errno`. Afterwards
   * {@linkcode MsgBuffers.msgFlags} holds `msg_flags` and
   * {@linkcode MsgBuffers.receivedFds} the descriptors that arrived.
   */
  recvmsg(fd: number, flags: number): number {
    this.prepareRecv();
    const raw = rawSocketCalls();
    const n = raw !== null
      ? raw.recvmsg(fd, this.#hdr, flags)
      : Number(libc().recvmsg(fd, this.#hdr, flags));
    return this.finishRecv(n < 0 && raw === null ? -errno() : n);
  }

  /** Sets the header up for a recvmsg(2) into the whole data buffer. */
  prepareRecv(): void {
    this.#iovView.setBigUint64(iovec.iov_len, this.#dataLen, true);
    const h = this.#hdrView;
    h.setBigUint64(msghdr.msg_control, this.#controlAddr, true);
    h.setBigUint64(msghdr.msg_controllen, this.#controlLen, true);
    h.setInt32(msghdr.msg_flags, 0, true);
  }

  /**
   * Records the outcome `n` (bytes or -errno) of a recvmsg(2) issued on
   * {@linkcode MsgBuffers.msghdr}, as {@linkcode MsgBuffers.recvmsg} does.
   * Returns `n`.
   */
  finishRecv(n: number): number {
    const h = this.#hdrView;
    if (n < 0) {
      h.setBigUint64(msghdr.msg_controllen, 0n, true);
      this.msgFlags = 0;
      return n;
    }
    this.msgFlags = h.getInt32(msghdr.msg_flags, true);
    return n;
  }

  /**
   * The descriptors of every SCM_RIGHTS control message of the last
   * {@linkcode MsgBuffers.recvmsg}, in order. Other control messages are
   * skipped.
   */
  receivedFds(): number[] {
    const total = Number(
      this.#hdrView.getBigUint64(msghdr.msg_controllen, true),
    );
    const c = this.#controlView;
    const fds: number[] = [];
    let off = 0;
    while (off + cmsghdr.SIZEOF <= total) {
      const len = Number(c.getBigUint64(off + cmsghdr.cmsg_len, true));
      if (len < cmsghdr.SIZEOF || off + len > total) break;
      const level = c.getInt32(off + cmsghdr.cmsg_level, true);
      const type = c.getInt32(off + cmsghdr.cmsg_type, true);
      if (level === SOCK.SOL_SOCKET && type === SOCK.SCM_RIGHTS) {
        const n = Math.floor((len - CMSG_DATA_OFFSET) / 4);
        for (let i = 0; i < n; i++) {
          fds.push(c.getInt32(off + CMSG_DATA_OFFSET + 4 * i, true));
        }
      }
      off += CMSG_SPACE(len - CMSG_DATA_OFFSET);
    }
    return fds;
  }
}
