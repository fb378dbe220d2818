// The frame format of IpcUnixSocket (docs/wire.md), shared by every reader
// and writer of the socket, on any thread.
//
// One frame is one SOCK_SEQPACKET record:
//   u32 size     bytes of message data
//   u16 nfds     descriptors that belong to the message
//   u8  flags    bit 0: the data travels in a sealed memfd (the last fd)
//   u8  version  1
//   data         `size` bytes, unless in a memfd
// followed by SCM_RIGHTS with nfds (+1 with the memfd flag) descriptors.
// All integers little-endian (every Linux target of isola is).

import { MSG, type MsgBuffers, SCM_MAX_FD } from "../../ffi/socket.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import { close, F, fcntl, lseek, pread } from "../../ffi/unistd.ts";
import { SyscallError } from "../../ffi/errno.ts";
import { IpcProtocolError } from "../common/errors.ts";

export const HEADER_SIZE = 8;
export const FRAME_VERSION = 1;
export const FLAG_MEMFD = 0x1;
/**
 * Data up to this size travels inside the frame; larger data in a memfd.
 * 128 KiB fits the default send buffer (net.core.wmem_default, 212,992
 * bytes) with room for the kernel's overhead, and keeps a 64 KiB payload
 * plus any header of an upper layer inline.
 */
export const INLINE_MAX = 128 * 1024;
/** Descriptors per message: the kernel's SCM_MAX_FD. */
export const MAX_FDS = SCM_MAX_FD;
/** Largest size the u32 header field can declare. */
export const SIZE_LIMIT = 0xffffffff;

export interface RawFrame {
  data: Uint8Array;
  fds: number[];
}

/** Writes the header into `buf[0, 8)`. */
export function writeHeader(
  buf: Uint8Array,
  size: number,
  nfds: number,
  flags: number,
): void {
  buf[0] = size & 0xff;
  buf[1] = (size >>> 8) & 0xff;
  buf[2] = (size >>> 16) & 0xff;
  buf[3] = (size >>> 24) & 0xff;
  buf[4] = nfds & 0xff;
  buf[5] = (nfds >>> 8) & 0xff;
  buf[6] = flags;
  buf[7] = FRAME_VERSION;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) close(fd);
}

function reject(
  fds: number[],
  reason: ConstructorParameters<typeof IpcProtocolError>[0],
  detail: string,
): never {
  closeAll(fds);
  throw new IpcProtocolError(reason, detail);
}

/**
 * Turns the record `recvmsg` just put in `rx` (`n` bytes) into a message,
 * or throws IpcProtocolError after closing every descriptor that arrived.
 */
export function decodeFrame(
  rx: MsgBuffers,
  n: number,
  maxSize: number,
): RawFrame {
  const fds = rx.receivedFds();
  const flags = rx.msgFlags;
  if (flags & MSG.MSG_CTRUNC) {
    reject(
      fds,
      "fds-truncated",
      `more descriptors than the ${rx.maxFds} allowed (or the process is out ` +
        `of descriptors); ${fds.length} arrived and were closed`,
    );
  }
  if (flags & MSG.MSG_TRUNC) {
    reject(
      fds,
      "data-truncated",
      `record longer than ${rx.data.length} bytes`,
    );
  }
  if (n < HEADER_SIZE) {
    reject(fds, "short-header", `record of ${n} bytes`);
  }
  const b = rx.data;
  const size = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  const nfds = b[4] | (b[5] << 8);
  const hflags = b[6];
  const version = b[7];
  if (version !== FRAME_VERSION || (hflags & ~FLAG_MEMFD) !== 0) {
    reject(
      fds,
      "bad-version",
      `version ${version}, flags 0x${hflags.toString(16)}`,
    );
  }
  if (size > maxSize) {
    reject(fds, "too-large", `declares ${size} bytes, limit ${maxSize}`);
  }
  const inMemfd = (hflags & FLAG_MEMFD) !== 0;
  const expectFds = nfds + (inMemfd ? 1 : 0);
  if (fds.length !== expectFds) {
    reject(
      fds,
      "fd-count-mismatch",
      `declares ${expectFds} descriptors, ${fds.length} arrived`,
    );
  }
  if (!inMemfd) {
    if (n - HEADER_SIZE !== size) {
      reject(
        fds,
        "length-mismatch",
        `declares ${size} bytes, ${n - HEADER_SIZE} arrived`,
      );
    }
    return { data: b.slice(HEADER_SIZE, n), fds };
  }
  if (n !== HEADER_SIZE) {
    reject(
      fds,
      "length-mismatch",
      `memfd frame with ${n - HEADER_SIZE} inline bytes`,
    );
  }
  const memfd = fds[fds.length - 1];
  const seals = fcntl(memfd, F.F_GET_SEALS);
  const need = F.F_SEAL_SHRINK | F.F_SEAL_GROW | F.F_SEAL_WRITE;
  if (seals < 0 || (seals & need) !== need) {
    reject(
      fds,
      "unsealed-payload",
      "the data descriptor is not a sealed memfd",
    );
  }
  const actual = lseek(memfd, 0, F.SEEK_END);
  if (actual !== size) {
    reject(
      fds,
      "length-mismatch",
      `declares ${size} bytes, memfd holds ${actual}`,
    );
  }
  const data = new Uint8Array(size);
  let done = 0;
  while (done < size) {
    const r = pread(memfd, data.subarray(done), done);
    if (r === -4) continue;
    if (r <= 0) {
      closeAll(fds);
      throw new SyscallError(
        r < 0 ? -r : 5,
        "pread",
        "Cannot read message data",
      );
    }
    done += r;
  }
  close(memfd);
  fds.pop();
  return { data, fds };
}

const hupPoll = new PollFds(1);

/**
 * Whether the empty read `n` from `fd` is the end of the stream: no data,
 * no descriptors, no truncation, and the peer has hung up. An empty record
 * from a live peer (or one carrying descriptors) is a bad frame instead.
 */
export function isEndOfStream(rx: MsgBuffers, n: number, fd: number): boolean {
  if (n !== 0) return false;
  if ((rx.msgFlags & (MSG.MSG_TRUNC | MSG.MSG_CTRUNC)) !== 0) return false;
  if (rx.receivedFds().length !== 0) return false;
  hupPoll.set(0, fd, POLL.POLLRDHUP);
  hupPoll.poll(0);
  return (hupPoll.revents(0) & (POLL.POLLRDHUP | POLL.POLLHUP)) !== 0;
}
