/**
 * `<spawn.h>`, `<sys/wait.h>`, `<sys/pidfd.h>`, `<sys/eventfd.h>`,
 * `<sys/mman.h>` and the process-related calls of `<unistd.h>`: what
 * {@linkcode Process} needs to start, watch, signal and reap children.
 *
 * - posix_spawn(3) with file actions (`adddup2`, `addclose`,
 *   `addclosefrom_np`, `addchdir_np`) and attributes, the fallback way to
 *   start a child; glibc >= 2.39's pidfd_spawn(3) is bound as an optional
 *   symbol and used when present.
 * - pidfd_open(2), pidfd_send_signal(2) and close_range(2) through
 *   syscall(2) (their numbers are shared by every architecture).
 * - waitid(2) with `P_PIDFD`, eventfd(2), pipe2(2), open(2), access(2),
 *   mmap(2)/mprotect(2) for the clone3 trampoline page.
 *
 * Wrappers return `-errno` on failure, read right after the call.
 *
 * @module
 */
import { errno } from "./errno.ts";
import { C, lazyLibc } from "./libc.ts";
import { glibc_opaque, siginfo_t } from "./structs.ts";

/** clone3(2) flags (`<linux/sched.h>`). */
export const CLONE = Object.freeze({
  CLONE_NEWTIME: 0x80n,
  CLONE_VM: 0x100n,
  CLONE_FILES: 0x400n,
  CLONE_PIDFD: 0x1000n,
  CLONE_VFORK: 0x4000n,
  CLONE_PARENT: 0x8000n,
  CLONE_NEWNS: 0x20000n,
  CLONE_PARENT_SETTID: 0x100000n,
  CLONE_NEWCGROUP: 0x2000000n,
  CLONE_NEWUTS: 0x4000000n,
  CLONE_NEWIPC: 0x8000000n,
  CLONE_NEWUSER: 0x10000000n,
  CLONE_NEWPID: 0x20000000n,
  CLONE_NEWNET: 0x40000000n,
  CLONE_CLEAR_SIGHAND: 0x100000000n,
});

/** waitid(2) id type for a pidfd (`<linux/wait.h>`, Linux 5.4). */
export const P_PIDFD = 3;

/** waitid(2) options. */
export const W = Object.freeze({
  WNOHANG: 1,
  WEXITED: 4,
  /** Also children whose exit signal is not SIGCHLD (exit_signal 0). */
  __WALL: 0x40000000,
});

/** `si_code` values for a child in the siginfo_t waitid(2) fills. */
export const CLD = Object.freeze({
  CLD_EXITED: 1,
  CLD_KILLED: 2,
  CLD_DUMPED: 3,
});

/** prctl(2) options. */
export const PR = Object.freeze({
  PR_SET_PDEATHSIG: 1,
  PR_SET_NO_NEW_PRIVS: 38,
});

/** open(2) flags, also used by pipe2(2) and eventfd(2). */
export const O = Object.freeze({
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
});

/** access(2) mode. */
export const X_OK = 1;

/** posix_spawnattr_setflags(3) flags. */
export const POSIX_SPAWN = Object.freeze({
  POSIX_SPAWN_SETSIGDEF: 0x04,
  POSIX_SPAWN_SETSIGMASK: 0x08,
});

/** mmap(2)/mprotect(2) protections and flags. */
export const MMAP = Object.freeze({
  PROT_READ: 1,
  PROT_WRITE: 2,
  PROT_EXEC: 4,
  MAP_PRIVATE: 0x02,
  MAP_ANONYMOUS: 0x20,
});

/**
 * System call numbers that are the same on every Linux architecture (the
 * unified table starting at 403).
 */
export const SYS = Object.freeze({
  pidfd_send_signal: 424,
  pidfd_open: 434,
  clone3: 435,
  close_range: 436,
});

const libc = lazyLibc(
  {
    // long syscall(long number, ...);  (integer arguments only)
    syscall: {
      parameters: [C.long, C.long, C.long, C.long, C.long, C.long],
      result: C.long,
    },
    // int waitid(idtype_t idtype, id_t id, siginfo_t *infop, int options);
    waitid: { parameters: [C.int, C.uint, C.buf, C.int], result: C.int },
    // int eventfd(unsigned int initval, int flags);
    eventfd: { parameters: [C.uint, C.int], result: C.int },
    // int pipe2(int pipefd[2], int flags);
    pipe2: { parameters: [C.buf, C.int], result: C.int },
    // int open(const char *pathname, int flags);  (<fcntl.h>, no O_CREAT)
    open: { parameters: [C.buf, C.int], result: C.int },
    // int access(const char *pathname, int mode);
    access: { parameters: [C.buf, C.int], result: C.int },
    // void *mmap(void *addr, size_t length, int prot, int flags, int fd,
    //            off_t offset);
    mmap: {
      parameters: [C.ptr, C.size_t, C.int, C.int, C.int, C.off_t],
      result: C.ptr,
    },
    // int mprotect(void *addr, size_t len, int prot);
    mprotect: { parameters: [C.ptr, C.size_t, C.int], result: C.int },
    // int posix_spawn(pid_t *pid, const char *path,
    //                 const posix_spawn_file_actions_t *file_actions,
    //                 const posix_spawnattr_t *attrp, char *const argv[],
    //                 char *const envp[]);
    posix_spawn: {
      parameters: [C.buf, C.buf, C.buf, C.buf, C.buf, C.ptr],
      result: C.int,
    },
    // int pidfd_spawn(int *pidfd, ...same as posix_spawn);  (glibc >= 2.39)
    pidfd_spawn: {
      parameters: [C.buf, C.buf, C.buf, C.buf, C.buf, C.ptr],
      result: C.int,
      optional: true,
    },
    // pid_t pidfd_getpid(int pidfd);  (glibc >= 2.39)
    pidfd_getpid: { parameters: [C.int], result: C.pid_t, optional: true },
    // int posix_spawn_file_actions_init(posix_spawn_file_actions_t *fa);
    posix_spawn_file_actions_init: { parameters: [C.buf], result: C.int },
    // int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *fa);
    posix_spawn_file_actions_destroy: { parameters: [C.buf], result: C.int },
    // int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa,
    //                                      int fildes, int newfildes);
    posix_spawn_file_actions_adddup2: {
      parameters: [C.buf, C.int, C.int],
      result: C.int,
    },
    // int posix_spawn_file_actions_addclose(posix_spawn_file_actions_t *fa,
    //                                       int fildes);
    posix_spawn_file_actions_addclose: {
      parameters: [C.buf, C.int],
      result: C.int,
    },
    // int posix_spawn_file_actions_addclosefrom_np(
    //     posix_spawn_file_actions_t *fa, int from);  (glibc >= 2.34)
    posix_spawn_file_actions_addclosefrom_np: {
      parameters: [C.buf, C.int],
      result: C.int,
    },
    // int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *fa,
    //                                          const char *path);
    posix_spawn_file_actions_addchdir_np: {
      parameters: [C.buf, C.buf],
      result: C.int,
    },
    // int posix_spawnattr_init(posix_spawnattr_t *attr);
    posix_spawnattr_init: { parameters: [C.buf], result: C.int },
    // int posix_spawnattr_destroy(posix_spawnattr_t *attr);
    posix_spawnattr_destroy: { parameters: [C.buf], result: C.int },
    // int posix_spawnattr_setflags(posix_spawnattr_t *attr, short flags);
    posix_spawnattr_setflags: { parameters: [C.buf, "i16"], result: C.int },
    // int posix_spawnattr_setsigdefault(posix_spawnattr_t *attr,
    //                                   const sigset_t *sigdefault);
    posix_spawnattr_setsigdefault: {
      parameters: [C.buf, C.buf],
      result: C.int,
    },
    // int posix_spawnattr_setsigmask(posix_spawnattr_t *attr,
    //                                const sigset_t *sigmask);
    posix_spawnattr_setsigmask: { parameters: [C.buf, C.buf], result: C.int },
    // int sigfillset(sigset_t *set);
    sigfillset: { parameters: [C.buf], result: C.int },
    // int sigemptyset(sigset_t *set);
    sigemptyset: { parameters: [C.buf], result: C.int },
    // extern char **environ;
    environ: { type: "pointer" },
  } satisfies Deno.ForeignLibraryInterface,
);

/** syscall(2) with up to five integer arguments. Returns the result or -1 (errno set). */
export function sysCall(
  nr: number,
  a = 0,
  b = 0,
  c = 0,
  d = 0,
  e = 0,
): number {
  return Number(
    libc().syscall(
      BigInt(nr),
      BigInt(a),
      BigInt(b),
      BigInt(c),
      BigInt(d),
      BigInt(e),
    ),
  );
}

/** pidfd_open(2): a pidfd for `pid` (close-on-exec). Returns it or `-errno`. */
export function pidfdOpen(pid: number): number {
  const r = sysCall(SYS.pidfd_open, pid, 0);
  return r < 0 ? -errno() : r;
}

// System call numbers that differ per architecture (x86_64 / aarch64).
const SYS_TGKILL = Deno.build.arch === "x86_64" ? 234 : 131;
const SYS_GETTID = Deno.build.arch === "x86_64" ? 186 : 178;

/** gettid(2): the calling thread's id. */
export function gettid(): number {
  return sysCall(SYS_GETTID);
}

/**
 * tgkill(2): sends `sig` to thread `tid` of thread group `tgid`. Returns 0
 * or `-errno`.
 */
export function tgkill(tgid: number, tid: number, sig: number): number {
  const r = sysCall(SYS_TGKILL, tgid, tid, sig);
  return r < 0 ? -errno() : 0;
}

/** pidfd_send_signal(2) with no siginfo. Returns 0 or `-errno`. */
export function pidfdSendSignal(pidfd: number, sig: number): number {
  const r = sysCall(SYS.pidfd_send_signal, pidfd, sig, 0, 0);
  return r < 0 ? -errno() : 0;
}

/** What waitid(2) reported for one child. */
export interface WaitResult {
  /** The child's pid; 0 if `WNOHANG` found nothing to report yet. */
  pid: number;
  /** `si_code`: one of {@linkcode CLD}. */
  code: number;
  /** `si_status`: the exit code, or the signal number. */
  status: number;
}

/**
 * waitid(P_PIDFD, pidfd, &info, options). Returns the report, or `-errno`.
 */
export function waitidPidfd(
  pidfd: number,
  options: number,
): WaitResult | number {
  const info = new Uint8Array(siginfo_t.SIZEOF);
  if (libc().waitid(P_PIDFD, pidfd, info, options) !== 0) return -errno();
  const v = new DataView(info.buffer);
  return {
    pid: v.getInt32(siginfo_t.si_pid, true),
    code: v.getInt32(siginfo_t.si_code, true),
    status: v.getInt32(siginfo_t.si_status, true),
  };
}

/** eventfd(2). Returns the descriptor or `-errno`. */
export function eventfd(initval: number, flags: number): number {
  const r = libc().eventfd(initval, flags);
  return r < 0 ? -errno() : r;
}

/** pipe2(2). Returns `[read end, write end]` or `-errno`. */
export function pipe2(flags: number): [number, number] | number {
  const fds = new Int32Array(2);
  if (libc().pipe2(fds, flags) !== 0) return -errno();
  return [fds[0], fds[1]];
}

/** open(2) without O_CREAT. Returns the descriptor or `-errno`. */
export function open(path: string, flags: number): number {
  const r = libc().open(cString(path), flags);
  return r < 0 ? -errno() : r;
}

/** access(2). Returns 0 or `-errno`. */
export function access(path: string, mode: number): number {
  const cpath = new TextEncoder().encode(path + "\0");
  return libc().access(cpath, mode) === 0 ? 0 : -errno();
}

/**
 * Maps `length` bytes of anonymous private memory, readable and writable.
 * Returns the address, or `-errno`.
 */
export function mmapAnonymous(length: number): Deno.PointerObject | number {
  const p = libc().mmap(
    null,
    BigInt(length),
    MMAP.PROT_READ | MMAP.PROT_WRITE,
    MMAP.MAP_PRIVATE | MMAP.MAP_ANONYMOUS,
    -1,
    0n,
  );
  // MAP_FAILED is (void *)-1.
  if (p === null || BigInt(Deno.UnsafePointer.value(p)) === 2n ** 64n - 1n) {
    return -errno();
  }
  return p;
}

/** mprotect(2). Returns 0 or `-errno`. */
export function mprotect(
  addr: Deno.PointerObject,
  length: number,
  prot: number,
): number {
  return libc().mprotect(addr, BigInt(length), prot) === 0 ? 0 : -errno();
}

const CODE_PAGE = 4096;

/**
 * A page holding `code` (a stub of machine code), made read + execute,
 * followed by `extraPages` writable pages (a stack). Returns the mapping's
 * address, or -errno of mmap(2) or mprotect(2).
 *
 * @throws {RangeError} If `code` does not fit in one page.
 */
export function mapCode(
  code: Uint8Array,
  extraPages = 0,
): Deno.PointerObject | number {
  if (code.length > CODE_PAGE) {
    throw new RangeError(`A stub of ${code.length} bytes exceeds a page`);
  }
  const mem = mmapAnonymous(CODE_PAGE * (1 + extraPages));
  if (typeof mem === "number") return mem;
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(mem, code.length)).set(
    code,
  );
  const r = mprotect(mem, CODE_PAGE, MMAP.PROT_READ | MMAP.PROT_EXEC);
  return r < 0 ? r : mem;
}

/**
 * The current value of `environ`: the process environment as a
 * NULL-terminated `char *[]`, suitable as `envp`.
 */
export function environPointer(): Deno.PointerValue {
  const slot = libc().environ;
  if (slot === null) return null;
  return new Deno.UnsafePointerView(slot).getPointer(0);
}

/** The process environment as `NAME=value` strings (from `environ`). */
export function environStrings(): string[] {
  const out: string[] = [];
  const arr = environPointer();
  if (arr === null) return out;
  const view = new Deno.UnsafePointerView(arr);
  for (let i = 0;; i++) {
    const p = view.getPointer(i * 8);
    if (p === null) break;
    out.push(Deno.UnsafePointerView.getCString(p));
  }
  return out;
}

/** A NUL-terminated string as bytes, for a `const char *` argument. */
export function cString(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/**
 * A `char *[]` (NULL-terminated) built from strings: `ptrs` is the array,
 * `keep` the bytes it points into. Keep both alive across the call.
 */
export interface CStringArray {
  /** The pointer array, ending with NULL. */
  ptrs: BigUint64Array;
  /** The string bytes the pointers point into. */
  keep: Uint8Array;
}

/** Builds a {@linkcode CStringArray}. */
export function cStringArray(strings: readonly string[]): CStringArray {
  const enc = new TextEncoder();
  const parts = strings.map((s) => enc.encode(s));
  let total = 0;
  for (const p of parts) total += p.length + 1;
  const keep = new Uint8Array(Math.max(total, 1));
  const ptrs = new BigUint64Array(parts.length + 1);
  const base = addressOf(keep);
  let off = 0;
  parts.forEach((p, i) => {
    keep.set(p, off);
    ptrs[i] = base + BigInt(off);
    off += p.length + 1; // the NUL is already 0
  });
  return { ptrs, keep };
}

/** The address of a typed array's first byte, as a 64-bit integer. */
export function addressOf(buf: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** What {@linkcode posixSpawn} should do in the child before exec. */
export interface PosixSpawnRequest {
  /** `path` as a C string. */
  path: Uint8Array;
  /** `argv`. */
  argv: BigUint64Array;
  /** `envp` (e.g. {@linkcode environPointer}). */
  envp: Deno.PointerValue;
  /** `[from, to]` pairs for adddup2; `from === to` clears FD_CLOEXEC. */
  dup2: readonly (readonly [number, number])[];
  /** Descriptors to close (EBADF is ignored by glibc for these). */
  close: readonly number[];
  /** Close every descriptor from this number up (addclosefrom_np). */
  closeFrom: number;
  /** Working directory as a C string, or undefined. */
  cwd?: Uint8Array;
  /** Use pidfd_spawn(3) when the C library has it. */
  wantPidfd: boolean;
}

/** Whether the C library has pidfd_spawn(3) (glibc >= 2.39). */
export function hasPidfdSpawn(): boolean {
  return libc().pidfd_spawn !== null;
}

/**
 * posix_spawn(3) (or pidfd_spawn(3)) with every signal reset to its
 * default and an empty signal mask in the child. glibc reports a failed
 * exec as the return value. Returns `{ pid, pidfd }` (`pidfd` -1 unless
 * pidfd_spawn was used), or `-errno`.
 */
export function posixSpawn(
  req: PosixSpawnRequest,
): { pid: number; pidfd: number } | number {
  const l = libc();
  const fa = new Uint8Array(glibc_opaque.posix_spawn_file_actions_t);
  const attr = new Uint8Array(glibc_opaque.posix_spawnattr_t);
  const all = new Uint8Array(glibc_opaque.sigset_t);
  const none = new Uint8Array(glibc_opaque.sigset_t);
  let r = l.posix_spawn_file_actions_init(fa);
  if (r !== 0) return -r;
  try {
    r = l.posix_spawnattr_init(attr);
    if (r !== 0) return -r;
    try {
      l.sigfillset(all);
      l.sigemptyset(none);
      for (const [from, to] of req.dup2) {
        r = l.posix_spawn_file_actions_adddup2(fa, from, to);
        if (r !== 0) return -r;
      }
      for (const fd of req.close) {
        r = l.posix_spawn_file_actions_addclose(fa, fd);
        if (r !== 0) return -r;
      }
      r = l.posix_spawn_file_actions_addclosefrom_np(fa, req.closeFrom);
      if (r !== 0) return -r;
      if (req.cwd !== undefined) {
        r = l.posix_spawn_file_actions_addchdir_np(fa, req.cwd);
        if (r !== 0) return -r;
      }
      l.posix_spawnattr_setsigdefault(attr, all);
      l.posix_spawnattr_setsigmask(attr, none);
      l.posix_spawnattr_setflags(
        attr,
        POSIX_SPAWN.POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN.POSIX_SPAWN_SETSIGMASK,
      );
      const out = new Int32Array(1);
      if (req.wantPidfd && l.pidfd_spawn !== null) {
        r = l.pidfd_spawn(out, req.path, fa, attr, req.argv, req.envp);
        if (r !== 0) return -r;
        const pid = l.pidfd_getpid === null ? -1 : l.pidfd_getpid(out[0]);
        return { pid, pidfd: out[0] };
      }
      r = l.posix_spawn(out, req.path, fa, attr, req.argv, req.envp);
      return r !== 0 ? -r : { pid: out[0], pidfd: -1 };
    } finally {
      l.posix_spawnattr_destroy(attr);
    }
  } finally {
    l.posix_spawn_file_actions_destroy(fa);
  }
}
