/**
 * `<unistd.h>` and `<fcntl.h>`: close(2), read(2), write(2), pread(2),
 * lseek(2), fcntl(2), and memfd_create(2) from `<sys/mman.h>`.
 *
 * Wrappers return `-errno` on failure, read right after the call.
 *
 * @module
 */
import { errno } from "./errno.ts";
import { C, lazyLibc } from "./libc.ts";

/** fcntl(2) commands and flags (identical on x86_64 and aarch64). */
export const F = Object.freeze({
  F_DUPFD_CLOEXEC: 1030,
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0o4000,
  F_ADD_SEALS: 1033,
  F_GET_SEALS: 1034,
  F_SEAL_SEAL: 0x1,
  F_SEAL_SHRINK: 0x2,
  F_SEAL_GROW: 0x4,
  F_SEAL_WRITE: 0x8,
  SEEK_SET: 0,
  SEEK_END: 2,
});

/** memfd_create(2) flags. */
export const MFD = Object.freeze({
  MFD_CLOEXEC: 0x1,
  MFD_ALLOW_SEALING: 0x2,
});

const libc = lazyLibc(
  {
    // int close(int fd);
    close: { parameters: [C.int], result: C.int },
    // ssize_t read(int fd, void *buf, size_t count);
    read: { parameters: [C.int, C.buf, C.size_t], result: C.ssize_t },
    // ssize_t write(int fd, const void *buf, size_t count);
    write: { parameters: [C.int, C.buf, C.size_t], result: C.ssize_t },
    // ssize_t pread(int fd, void *buf, size_t count, off_t offset);
    pread: { parameters: [C.int, C.buf, C.size_t, C.off_t], result: C.ssize_t },
    // ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset);
    pwrite: {
      parameters: [C.int, C.buf, C.size_t, C.off_t],
      result: C.ssize_t,
    },
    // off_t lseek(int fd, off_t offset, int whence);
    lseek: { parameters: [C.int, C.off_t, C.int], result: C.off_t },
    // int fcntl(int fd, int cmd, int arg);  (the int-argument form)
    fcntl: { parameters: [C.int, C.int, C.int], result: C.int },
    // int memfd_create(const char *name, unsigned int flags);
    memfd_create: { parameters: [C.buf, C.uint], result: C.int },
    // int dup(int oldfd);
    dup: { parameters: [C.int], result: C.int },
    // ssize_t readlink(const char *pathname, char *buf, size_t bufsiz);
    readlink: { parameters: [C.buf, C.buf, C.size_t], result: C.ssize_t },
  } satisfies Deno.ForeignLibraryInterface,
);

/** close(2). Returns 0 or `-errno`. */
export function close(fd: number): number {
  return libc().close(fd) === 0 ? 0 : -errno();
}

/** read(2) into `buf`. Returns the bytes read or `-errno`. */
export function read(fd: number, buf: Uint8Array): number {
  const n = Number(libc().read(fd, buf, buf.length));
  return n < 0 ? -errno() : n;
}

/** write(2) of `buf`. Returns the bytes written or `-errno`. */
export function write(fd: number, buf: Uint8Array): number {
  const n = Number(libc().write(fd, buf, buf.length));
  return n < 0 ? -errno() : n;
}

/** pread(2) into `buf` at `offset`. Returns the bytes read or `-errno`. */
export function pread(fd: number, buf: Uint8Array, offset: number): number {
  const n = Number(libc().pread(fd, buf, buf.length, BigInt(offset)));
  return n < 0 ? -errno() : n;
}

/** pwrite(2) of `buf` at `offset`. Returns the bytes written or `-errno`. */
export function pwrite(fd: number, buf: Uint8Array, offset: number): number {
  const n = Number(libc().pwrite(fd, buf, buf.length, BigInt(offset)));
  return n < 0 ? -errno() : n;
}

/** lseek(2). Returns the new offset or `-errno`. */
export function lseek(fd: number, offset: number, whence: number): number {
  const n = Number(libc().lseek(fd, BigInt(offset), whence));
  return n < 0 ? -errno() : n;
}

/** fcntl(2) with an `int` argument. Returns the result or `-errno`. */
export function fcntl(fd: number, cmd: number, arg = 0): number {
  const r = libc().fcntl(fd, cmd, arg);
  return r < 0 ? -errno() : r;
}

/** dup(2). Returns the new descriptor or `-errno`. */
export function dup(fd: number): number {
  const r = libc().dup(fd);
  return r < 0 ? -errno() : r;
}

/** memfd_create(2). Returns the descriptor or `-errno`. */
export function memfdCreate(name: string, flags: number): number {
  const cname = new TextEncoder().encode(name + "\0");
  const r = libc().memfd_create(cname, flags);
  return r < 0 ? -errno() : r;
}

/**
 * readlink(2). Returns the link target, or `-errno`. Deno itself refuses
 * `/proc/self` paths without `--allow-all`; this goes through FFI.
 */
export function readlink(path: string): string | number {
  const cpath = new TextEncoder().encode(path + "\0");
  const buf = new Uint8Array(4096);
  const n = Number(libc().readlink(cpath, buf, BigInt(buf.length)));
  if (n < 0) return -errno();
  return new TextDecoder().decode(buf.subarray(0, n));
}
