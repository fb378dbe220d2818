/**
 * errno: reading it right after a failing call, naming it, and the error
 * type every failed system call becomes.
 *
 * `errno` is thread-local: read it on the thread that made the call, right
 * after the call (never after a `nonblocking: true` call, which runs on a
 * pool thread). See errno(3).
 *
 * @module
 */
import { C, lazyLibc } from "./libc.ts";

const libc = lazyLibc(
  {
    // int *__errno_location(void);
    __errno_location: { parameters: [], result: C.ptr },
    // char *strerror(int errnum);
    strerror: { parameters: [C.int], result: C.ptr },
  } satisfies Deno.ForeignLibraryInterface,
);

let errnoView: Deno.UnsafePointerView | undefined;

/**
 * The calling thread's current errno value. Call it immediately after the
 * failing libc call, before any other libc call.
 */
export function errno(): number {
  if (errnoView === undefined) {
    const p = libc().__errno_location();
    if (p === null) throw new Error("__errno_location returned NULL");
    errnoView = new Deno.UnsafePointerView(p);
  }
  return errnoView.getInt32(0);
}

/**
 * Symbolic names of the errno values (asm-generic numbering, shared by
 * x86_64 and aarch64; see errno(3) and `asm-generic/errno*.h`).
 */
export const ERRNO_NAMES: Readonly<Record<number, string>> = Object.freeze({
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  8: "ENOEXEC",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  32: "EPIPE",
  34: "ERANGE",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  40: "ELOOP",
  75: "EOVERFLOW",
  87: "EUSERS",
  88: "ENOTSOCK",
  90: "EMSGSIZE",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  105: "ENOBUFS",
  107: "ENOTCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
  122: "EDQUOT",
});

/** errno values used by name in isola. */
export const E = Object.freeze({
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EINVAL: 22,
  EMFILE: 24,
  ENOSPC: 28,
  EPIPE: 32,
  ENOSYS: 38,
  EUSERS: 87,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ENOTCONN: 107,
  ECONNREFUSED: 111,
});

/** The symbolic name of an errno value (`11` → `"EAGAIN"`). */
export function errnoName(code: number): string {
  return ERRNO_NAMES[code] ?? `E${code}`;
}

/** The C library's description of an errno value, see strerror(3). */
export function errnoDescription(code: number): string {
  const p = libc().strerror(code);
  return p === null ? "" : Deno.UnsafePointerView.getCString(p);
}

/**
 * A system call failed. Carries the errno value, its symbolic name, the
 * call, and what isola was doing when it failed.
 *
 * @example Catching a specific errno
 * ```ts
 * import { SyscallError } from "@isola/isola";
 *
 * const err = new SyscallError(11, "sendmsg", "Cannot send message");
 * console.log(err.code); // "EAGAIN"
 * console.log(err.message); // "Cannot send message: sendmsg failed with EAGAIN (...)"
 * ```
 */
export class SyscallError extends Error {
  /** The errno value, e.g. `11`. */
  readonly errno: number;
  /** The errno's symbolic name, e.g. `"EAGAIN"`. */
  readonly code: string;
  /** The failing call, e.g. `"sendmsg"`. */
  readonly syscall: string;

  /**
   * Builds the error.
   *
   * @param errnoValue The errno value read right after the call.
   * @param syscall The name of the call that failed.
   * @param action What was being done, e.g. `"Cannot send message"`.
   */
  constructor(errnoValue: number, syscall: string, action: string) {
    const code = errnoName(errnoValue);
    super(
      `${action}: ${syscall} failed with ${code} (${
        errnoDescription(errnoValue)
      })`,
    );
    this.name = "SyscallError";
    this.errno = errnoValue;
    this.code = code;
    this.syscall = syscall;
  }
}

/**
 * Reads errno now and wraps it in a {@linkcode SyscallError}.
 *
 * @param syscall The call that just returned failure.
 * @param action What was being done.
 */
export function lastError(syscall: string, action: string): SyscallError {
  return new SyscallError(errno(), syscall, action);
}
