/**
 * {@linkcode OwnedFd}: the one owner of a file descriptor (libcamera's
 * `UniqueFD`).
 *
 * @module
 */
import { SyscallError } from "../../ffi/errno.ts";
import { close as closeFd, F, fcntl } from "../../ffi/unistd.ts";

// Safety net only: a descriptor whose owner was garbage-collected without
// close() or release() is closed here. Correct code never relies on it.
const leaked = new FinalizationRegistry<number>((fd) => {
  closeFd(fd);
});

/**
 * Owns a file descriptor: closes it at most once, on {@linkcode close},
 * on `using` scope exit, or (as a last resort) when garbage-collected.
 * {@linkcode release} hands the number on to a new owner without closing.
 *
 * @example Owning and releasing
 * ```ts
 * import { createMemfd, OwnedFd } from "@isola/isola";
 *
 * using fd = createMemfd({ data: new TextEncoder().encode("hi") });
 * const raw: number = fd.fd; // borrow the number
 * const dup = fd.dup(); // a second, independent owner
 * const n = dup.release(); // dup no longer owns n: the caller must close it
 * new OwnedFd(n).close();
 * console.log(raw >= 0);
 * ```
 */
export class OwnedFd implements Disposable {
  #fd: number;
  readonly #token = {};

  /**
   * Takes ownership of `fd`.
   *
   * @param fd An open descriptor, which nobody else will close.
   * @throws {RangeError} If `fd` is not a non-negative integer.
   */
  constructor(fd: number) {
    if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
      throw new RangeError(
        `Cannot own file descriptor: ${fd} is not a non-negative integer`,
      );
    }
    this.#fd = fd;
    leaked.register(this, fd, this.#token);
  }

  /**
   * The descriptor number, still owned by this object.
   *
   * @throws {TypeError} If the descriptor was closed or released.
   */
  get fd(): number {
    if (this.#fd < 0) {
      throw new TypeError(
        "Cannot use file descriptor: it was already closed or released",
      );
    }
    return this.#fd;
  }

  /** Whether this object still owns a descriptor. */
  get isValid(): boolean {
    return this.#fd >= 0;
  }

  /**
   * Gives up ownership and returns the number; the caller now closes it.
   *
   * @throws {TypeError} If the descriptor was closed or released.
   */
  release(): number {
    const fd = this.fd;
    this.#fd = -1;
    leaked.unregister(this.#token);
    return fd;
  }

  /**
   * Duplicates the descriptor (close-on-exec) into a new owner.
   *
   * @throws {SyscallError} If fcntl(F_DUPFD_CLOEXEC) fails.
   */
  dup(): OwnedFd {
    const r = fcntl(this.fd, F.F_DUPFD_CLOEXEC, 0);
    if (r < 0) {
      throw new SyscallError(-r, "fcntl", "Cannot duplicate file descriptor");
    }
    return new OwnedFd(r);
  }

  /**
   * Closes the descriptor. Closing again, or after release, does nothing.
   * The descriptor is gone even if close(2) reports an error (see its man
   * page), so errors are not thrown, except `EBADF`, which means somebody
   * else closed a descriptor we owned: a bug worth hearing about.
   *
   * @throws {SyscallError} With `EBADF` if the number was not open.
   */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    leaked.unregister(this.#token);
    const r = closeFd(fd);
    if (r === -9) {
      throw new SyscallError(9, "close", `Cannot close file descriptor ${fd}`);
    }
  }

  /** Closes the descriptor (`using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Something that names a descriptor: an {@linkcode OwnedFd} or a number. */
export type FdLike = OwnedFd | number;

/** The number of an {@linkcode FdLike}, validated. */
export function fdNumber(fd: FdLike, what: string): number {
  if (fd instanceof OwnedFd) return fd.fd;
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw new RangeError(`${what}: ${fd} is not a valid file descriptor`);
  }
  return fd;
}
