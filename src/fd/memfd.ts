/**
 * Anonymous memory files (memfd_create(2)): the way to hand a buffer to
 * another thread or process by descriptor, and to check what arrived.
 *
 * @module
 */
import { SyscallError } from "../../ffi/errno.ts";
import {
  F,
  fcntl,
  lseek,
  memfdCreate,
  MFD,
  pread,
  pwrite,
} from "../../ffi/unistd.ts";
import { type FdLike, fdNumber, OwnedFd } from "./owned_fd.ts";

/** Options for {@linkcode createMemfd}. */
export interface CreateMemfdOptions {
  /** Name shown in `/proc/<pid>/fd` as `memfd:<name>`. Default `"isola"`. */
  name?: string;
  /** Initial content. */
  data?: Uint8Array;
  /**
   * Seal the file after writing `data` (no write, grow, shrink, or further
   * sealing), so a receiver can trust it will not change. Default `false`.
   */
  seal?: boolean;
}

/**
 * Creates a memfd (close-on-exec, sealable), optionally filled and sealed.
 *
 * @param options Name, content and sealing.
 * @returns The owned descriptor.
 * @throws {SyscallError} If memfd_create, write or sealing fails.
 *
 * @example
 * ```ts
 * import { createMemfd, readFd } from "@isola/isola";
 *
 * using fd = createMemfd({ data: new Uint8Array([1, 2, 3]), seal: true });
 * console.log(readFd(fd)); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export function createMemfd(options: CreateMemfdOptions = {}): OwnedFd {
  const r = memfdCreate(
    options.name ?? "isola",
    MFD.MFD_CLOEXEC | MFD.MFD_ALLOW_SEALING,
  );
  if (r < 0) throw new SyscallError(-r, "memfd_create", "Cannot create memfd");
  const fd = new OwnedFd(r);
  try {
    if (options.data) writeFd(fd, options.data, 0);
    if (options.seal) sealFd(fd);
  } catch (e) {
    fd.close();
    throw e;
  }
  return fd;
}

/**
 * Writes all of `data` at `offset` (pwrite(2), retried until complete).
 *
 * @param fd A seekable descriptor.
 * @param data The bytes.
 * @param offset Where to write. Default 0.
 * @throws {SyscallError} If pwrite fails.
 *
 * @example
 * ```ts
 * import { createMemfd, readFd, writeFd } from "@isola/isola";
 *
 * using fd = createMemfd();
 * writeFd(fd, new TextEncoder().encode("abc"));
 * console.log(new TextDecoder().decode(readFd(fd))); // "abc"
 * ```
 */
export function writeFd(fd: FdLike, data: Uint8Array, offset = 0): void {
  const n = fdNumber(fd, "Cannot write");
  let done = 0;
  while (done < data.length) {
    const r = pwrite(n, data.subarray(done), offset + done);
    if (r === -4) continue; // EINTR
    if (r < 0) throw new SyscallError(-r, "pwrite", "Cannot write to fd");
    done += r;
  }
}

/**
 * The size of a seekable file (lseek(2) to the end).
 *
 * @param fd A seekable descriptor.
 * @throws {SyscallError} If lseek fails (e.g. `ESPIPE` on a pipe).
 *
 * @example
 * ```ts
 * import { createMemfd, fdSize } from "@isola/isola";
 *
 * using fd = createMemfd({ data: new Uint8Array(10) });
 * console.log(fdSize(fd)); // 10
 * ```
 */
export function fdSize(fd: FdLike): number {
  const r = lseek(fdNumber(fd, "Cannot size"), 0, F.SEEK_END);
  if (r < 0) throw new SyscallError(-r, "lseek", "Cannot find file size");
  return r;
}

/**
 * Reads a whole seekable file from offset 0 (pread(2); the file offset is
 * left alone).
 *
 * @param fd A seekable descriptor.
 * @returns The content.
 * @throws {SyscallError} If lseek or pread fails.
 *
 * @example
 * ```ts
 * import { createMemfd, readFd } from "@isola/isola";
 *
 * using fd = createMemfd({ data: new TextEncoder().encode("frame") });
 * console.log(readFd(fd).length); // 5
 * ```
 */
export function readFd(fd: FdLike): Uint8Array {
  const n = fdNumber(fd, "Cannot read");
  const out = new Uint8Array(fdSize(n));
  let done = 0;
  while (done < out.length) {
    const r = pread(n, out.subarray(done), done);
    if (r === -4) continue; // EINTR
    if (r < 0) throw new SyscallError(-r, "pread", "Cannot read from fd");
    if (r === 0) return out.subarray(0, done); // shrunk meanwhile
    done += r;
  }
  return out;
}

/** Seals that make a memfd immutable: no write, grow, shrink, re-seal. */
export const IMMUTABLE_SEALS: number = F.F_SEAL_SEAL | F.F_SEAL_SHRINK |
  F.F_SEAL_GROW | F.F_SEAL_WRITE;

/**
 * Seals a memfd so it can no longer change (fcntl(2) `F_ADD_SEALS`).
 *
 * @param fd A memfd created with sealing allowed.
 * @throws {SyscallError} If the file cannot be sealed (`EPERM` if sealing
 *   is not allowed, `EBUSY` if it is mapped writable).
 *
 * @example
 * ```ts
 * import { createMemfd, isSealed, sealFd } from "@isola/isola";
 *
 * using fd = createMemfd({ data: new Uint8Array(4) });
 * sealFd(fd);
 * console.log(isSealed(fd)); // true
 * ```
 */
export function sealFd(fd: FdLike): void {
  const r = fcntl(fdNumber(fd, "Cannot seal"), F.F_ADD_SEALS, IMMUTABLE_SEALS);
  if (r < 0) throw new SyscallError(-r, "fcntl", "Cannot seal memfd");
}

/**
 * Whether a descriptor is a memfd that can no longer be written, grown or
 * shrunk.
 *
 * @param fd Any descriptor.
 *
 * @example
 * ```ts
 * import { createMemfd, isSealed } from "@isola/isola";
 *
 * using fd = createMemfd();
 * console.log(isSealed(fd)); // false
 * ```
 */
export function isSealed(fd: FdLike): boolean {
  const r = fcntl(fdNumber(fd, "Cannot check seals"), F.F_GET_SEALS);
  const need = F.F_SEAL_SHRINK | F.F_SEAL_GROW | F.F_SEAL_WRITE;
  return r >= 0 && (r & need) === need;
}
