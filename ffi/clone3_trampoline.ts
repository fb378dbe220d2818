/**
 * The clone3 trampoline: a few bytes of x86_64 machine code, assembled
 * from `ffi/clone3_x86_64.S` (the source of truth; a test re-assembles it
 * and compares), placed in an executable page and called through
 * `Deno.UnsafeFnPointer`.
 *
 * Why: a child created by fork(2)/clone3(2) that returns into V8 crashes
 * (V8 maps its heap `MADV_DONTFORK`), so the child must exec without
 * running JavaScript. The trampoline calls clone3(2) and, in the child,
 * makes only raw system calls from a list prepared by the parent (reset
 * signals, set the parent-death signal, no_new_privs, move and keep
 * descriptors, close the others, chdir), then execve(2). On failure it
 * stores `errno` and the failing step where the parent reads it (the child
 * shares the parent's memory under `CLONE_VM`) and calls exit_group(127).
 *
 * Other architectures have no trampoline: {@linkcode clone3Available}
 * is false there and callers fall back to posix_spawn(3).
 *
 * @module
 */
import { CLONE, MMAP, mmapAnonymous, mprotect, open } from "./spawn.ts";
import { close, read } from "./unistd.ts";
import { clone_args } from "./structs.ts";
import {
  AT_FDCWD,
  AT_RECURSIVE,
  KEYCTL_JOIN_SESSION_KEYRING,
  mount_attr,
  PR_SET_DUMPABLE,
  S_IFREG,
} from "./mount.ts";

/** The bytes of `isola_clone3` from `ffi/clone3_x86_64.S` (.text). */
export const CLONE3_X86_64_CODE: Uint8Array = hex(
  "534889fb488b3b488b7308b8b30100000f054885c074025bc34c8b63104c8b6b" +
    "184531f64531ff4d39ee7367498b0424498b7c240841f64424380174034c89ff" +
    "498b742410498b5424184d8b5424204d8b4424284531c90f0541f64424380274" +
    "034989c7483d01f0ffff7316498b4c24304885c974144839c8740f48c7c0fdff" +
    "ffff41f644243804741c4983c44049ffc6eb94488b7b20488b7328488b5330b8" +
    "3b0000000f05f7d88943384489733cbf7f000000b8e70000000f050f0b",
);

function hex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

/** `struct isola_spawn`, the block the trampoline reads (see the .S). */
export const isola_spawn = Object.freeze({
  args: 0, // struct clone_args *
  args_size: 8, // size_t
  ops: 16, // struct isola_op *
  nops: 24, // size_t
  path: 32, // const char *
  argv: 40, // char *const *
  envp: 48, // char *const *
  err: 56, // int, written by the child
  step: 60, // int, written by the child
  SIZEOF: 64,
});

/** `struct isola_op`: one system call the child makes before exec. */
export const isola_op = Object.freeze({
  nr: 0, // long
  a0: 8, // long
  a1: 16, // long
  a2: 24, // long
  a3: 32, // long
  a4: 40, // long
  expect: 48, // long, 0 = any non-error result
  flags: 56, // long, OP_FLAG bits
  SIZEOF: 64,
});

/** `isola_op.flags` bits the trampoline understands. */
export const OP_FLAG = Object.freeze({
  /** `a0` is replaced by the saved result (a descriptor opened earlier). */
  A0_SAVED: 1,
  /** The result is saved for later ops. */
  SAVE: 2,
  /** A failure does not stop the child (best-effort steps). */
  MAY_FAIL: 4,
});

/** x86_64 system call numbers used in the child (`asm/unistd_64.h`). */
export const SYS_X86_64 = Object.freeze({
  write: 1,
  close: 3,
  rt_sigaction: 13,
  rt_sigprocmask: 14,
  fcntl: 72,
  chdir: 80,
  umask: 95,
  getppid: 110,
  setsid: 112,
  setgroups: 116,
  setresuid: 117,
  setresgid: 119,
  pivot_root: 155,
  prctl: 157,
  mount: 165,
  umount2: 166,
  sethostname: 170,
  exit_group: 231,
  keyctl: 250,
  openat: 257,
  mkdirat: 258,
  mknodat: 259,
  symlinkat: 266,
  dup3: 292,
  prlimit64: 302,
  seccomp: 317,
  close_range: 436,
  move_mount: 429,
  mount_setattr: 442,
  landlock_create_ruleset: 444,
  landlock_add_rule: 445,
  landlock_restrict_self: 446,
});

const O_WRONLY = 1;
const O_RDONLY_CLOEXEC = 0o2000000;
const STATUS_BYTES = 8192;
const O_PATH = 0o10000000;
const LANDLOCK_RULE_PATH_BENEATH = 1;
const O_CLOEXEC = 0o2000000;
const SECCOMP_SET_MODE_FILTER = 1;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;

const PAGE = 4096;
const SIG_SETMASK = 2;
const F_SETFD = 2;
const PR_SET_PDEATHSIG = 1;
const PR_SET_NO_NEW_PRIVS = 38;

/** Whether the trampoline exists for this platform (Linux x86_64). */
export function clone3Available(): boolean {
  return Deno.build.os === "linux" && Deno.build.arch === "x86_64";
}

function address(buf: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** A user-space address as a number (below 2^47 on x86_64: exact). */
function addr(buf: ArrayBufferView): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

const WORDS_PER_OP = isola_op.SIZEOF / 4;

// struct kernel_sigaction { handler = SIG_DFL, flags, restorer, mask } and
// an empty sigset: module-lifetime buffers the reset ops point at.
const SIG_DFL_ACTION = new BigUint64Array(4);
const EMPTY_SIGSET = new BigUint64Array(1);
const SIGKILL = 9;
const SIGSTOP = 19;
const SIGNAL_COUNT = 64;
const SIGSET_BYTES = 8;
const ALL_SIGNALS = Array.from({ length: SIGNAL_COUNT }, (_, i) => i + 1);

/**
 * The signals this process ignores (`SigIgn` of /proc/self/status), which
 * a child would inherit as ignored; every signal if it cannot be read.
 */
export function ignoredSignals(): number[] {
  const fd = open("/proc/self/status", O_RDONLY_CLOEXEC);
  if (fd < 0) return ALL_SIGNALS;
  const buf = new Uint8Array(STATUS_BYTES);
  const n = read(fd, buf);
  close(fd);
  const m = n > 0
    ? new TextDecoder().decode(buf.subarray(0, n)).match(
      /^SigIgn:\s+([0-9a-f]+)$/m,
    )
    : null;
  if (m === null) return ALL_SIGNALS;
  const mask = BigInt("0x" + m[1]);
  return ALL_SIGNALS.filter((s) => ((mask >> BigInt(s - 1)) & 1n) === 1n);
}

/**
 * The system calls the child makes between clone3 and execve, in order.
 * Each has a name, used to say which step failed. Arguments are
 * non-negative integers below 2^53 (descriptors, flags, user addresses).
 */
export class ChildOps {
  // Each op as 16 u32 words (lo, hi of eight longs).
  readonly #words: number[] = [];
  readonly #names: string[] = [];
  // Buffers the ops point into; alive as long as this object.
  readonly #keep: ArrayBufferView[] = [];

  /** Number of ops. */
  get length(): number {
    return this.#names.length;
  }

  /** The name of op `i`; `length` names the final execve. */
  name(i: number): string {
    return this.#names[i] ?? "execve";
  }

  /**
   * Appends `syscall(nr, a0..a4)`; a non-zero `expect` must be returned;
   * `flags` are {@linkcode OP_FLAG} bits.
   */
  add(
    name: string,
    nr: number,
    args: readonly number[] = [],
    expect = 0,
    flags = 0,
  ): this {
    if (args.length > 5) throw new RangeError(`${name}: at most 5 arguments`);
    for (
      const v of [
        nr,
        args[0] ?? 0,
        args[1] ?? 0,
        args[2] ?? 0,
        args[3] ?? 0,
        args[4] ?? 0,
        expect,
        flags,
      ]
    ) {
      // Negative values (e.g. AT_FDCWD) as two's complement 64-bit words.
      const lo = v >>> 0;
      const hi = v < 0
        ? (Math.floor(v / 0x100000000) >>> 0)
        : Math.floor(v / 0x100000000);
      this.#words.push(lo, hi);
    }
    this.#names.push(name);
    return this;
  }

  /** Keeps `buf` referenced as long as these ops, and returns its address. */
  pin(buf: ArrayBufferView): number {
    this.#keep.push(buf);
    return addr(buf);
  }

  /** Appends every op of `other` (and keeps its buffers). */
  append(other: ChildOps): this {
    this.#words.push(...other.#words);
    this.#names.push(...other.#names);
    this.#keep.push(...other.#keep);
    return this;
  }

  /**
   * Signals back to their default action, then an empty signal mask, as
   * POSIX_SPAWN_SETSIGDEF/SETSIGMASK do. `CLONE_CLEAR_SIGHAND` already
   * resets handled signals, but `SIG_IGN` survives it and execve (the
   * Deno process ignores SIGPIPE and glibc's internal signals 32 and 33),
   * so `signals` are those the parent ignores ({@linkcode ignoredSignals});
   * by default every signal 1-64.
   */
  resetSignals(signals: readonly number[] = ALL_SIGNALS): this {
    for (const sig of signals) {
      if (sig === SIGKILL || sig === SIGSTOP) continue;
      this.add("rt_sigaction", SYS_X86_64.rt_sigaction, [
        sig,
        addr(SIG_DFL_ACTION),
        0,
        SIGSET_BYTES,
      ]);
    }
    return this.add("rt_sigprocmask", SYS_X86_64.rt_sigprocmask, [
      SIG_SETMASK,
      addr(EMPTY_SIGSET),
      0,
      SIGSET_BYTES,
    ]);
  }

  /**
   * prctl(PR_SET_PDEATHSIG, sig), then getppid() must still be `ppid`
   * (else the parent died first and the signal will never come).
   */
  parentDeathSignal(sig: number, ppid: number): this {
    this.add("prctl(PR_SET_PDEATHSIG)", SYS_X86_64.prctl, [
      PR_SET_PDEATHSIG,
      sig,
    ]);
    return this.add("getppid", SYS_X86_64.getppid, [], ppid);
  }

  /** prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0). */
  noNewPrivs(): this {
    return this.add("prctl(PR_SET_NO_NEW_PRIVS)", SYS_X86_64.prctl, [
      PR_SET_NO_NEW_PRIVS,
      1,
    ]);
  }

  /** fcntl(fd, F_SETFD, 0): keep `fd` open across execve. */
  keepFd(fd: number): this {
    return this.add("fcntl(F_SETFD)", SYS_X86_64.fcntl, [fd, F_SETFD, 0]);
  }

  /** dup3(from, to, 0): `to` becomes `from`, without close-on-exec. */
  dup(from: number, to: number): this {
    return this.add("dup3", SYS_X86_64.dup3, [from, to, 0]);
  }

  /** close_range(first, last, 0); `last` of -1 means `~0U`. */
  closeRange(first: number, last: number): this {
    return this.add("close_range", SYS_X86_64.close_range, [
      first,
      last < 0 ? 0xffffffff : last,
      0,
    ]);
  }

  /** chdir(path). */
  chdir(path: Uint8Array): this {
    this.#keep.push(path);
    return this.add("chdir", SYS_X86_64.chdir, [addr(path)]);
  }

  /** A C string of `s`, kept alive with these ops; returns its address. */
  #str(s: string): number {
    return this.pin(new TextEncoder().encode(s + "\0"));
  }

  /**
   * Writes `content` to the file at `path` (open, one write, close): e.g.
   * the child's own `/proc/self/uid_map`.
   */
  writeFile(path: string, content: string): this {
    const bytes = new TextEncoder().encode(content);
    this.add(
      `open ${path}`,
      SYS_X86_64.openat,
      [
        AT_FDCWD,
        this.#str(path),
        O_WRONLY | O_CLOEXEC,
      ],
      0,
      OP_FLAG.SAVE,
    );
    this.add(
      `write ${path}`,
      SYS_X86_64.write,
      [
        0,
        this.pin(bytes),
        bytes.length,
      ],
      bytes.length,
      OP_FLAG.A0_SAVED,
    );
    return this.add(
      `close ${path}`,
      SYS_X86_64.close,
      [0],
      0,
      OP_FLAG.A0_SAVED,
    );
  }

  /** setgroups(0, NULL): no supplementary group. */
  dropGroups(): this {
    return this.add("setgroups", SYS_X86_64.setgroups, [0, 0]);
  }

  /** setresuid(id, id, id). */
  setUid(id: number): this {
    return this.add("setresuid", SYS_X86_64.setresuid, [id, id, id]);
  }

  /** setresgid(id, id, id). */
  setGid(id: number): this {
    return this.add("setresgid", SYS_X86_64.setresgid, [id, id, id]);
  }

  /** prctl(PR_SET_DUMPABLE, 1): its /proc files belong to it again. */
  dumpable(): this {
    return this.add("prctl(PR_SET_DUMPABLE)", SYS_X86_64.prctl, [
      PR_SET_DUMPABLE,
      1,
    ]);
  }

  /** mount(source, target, fstype, flags, data); null for NULL. */
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null = null,
  ): this {
    return this.add(`mount ${target}`, SYS_X86_64.mount, [
      source === null ? 0 : this.#str(source),
      this.#str(target),
      fstype === null ? 0 : this.#str(fstype),
      flags,
      data === null ? 0 : this.#str(data),
    ]);
  }

  /**
   * mount_setattr(AT_FDCWD, path, AT_RECURSIVE?, {attr_set, attr_clr}):
   * changes only the given attributes, so flags the kernel locked on a
   * mount from a more privileged namespace stay as they are.
   */
  mountSetattr(path: string, set: number, recursive = true): this {
    const attr = new BigUint64Array(mount_attr.SIZEOF / 8);
    attr[mount_attr.attr_set / 8] = BigInt(set);
    return this.add(`mount_setattr ${path}`, SYS_X86_64.mount_setattr, [
      AT_FDCWD,
      this.#str(path),
      recursive ? AT_RECURSIVE : 0,
      this.pin(attr),
      mount_attr.SIZEOF,
    ]);
  }

  /**
   * move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH):
   * attaches a detached mount tree the parent made with open_tree(2).
   */
  moveMount(tree: number, target: string): this {
    return this.add(`move_mount ${target}`, SYS_X86_64.move_mount, [
      tree,
      this.#str(""),
      AT_FDCWD,
      this.#str(target),
      MOVE_MOUNT_F_EMPTY_PATH,
    ]);
  }

  /** mkdirat(AT_FDCWD, path, mode). */
  mkdir(path: string, mode: number): this {
    return this.add(`mkdir ${path}`, SYS_X86_64.mkdirat, [
      AT_FDCWD,
      this.#str(path),
      mode,
    ]);
  }

  /** mkdirat with exactly `mode`: umask(0) around it, then the old umask back. */
  mkdirExact(path: string, mode: number): this {
    this.add("umask", SYS_X86_64.umask, [0], 0, OP_FLAG.SAVE);
    this.mkdir(path, mode);
    return this.add("umask", SYS_X86_64.umask, [0], 0, OP_FLAG.A0_SAVED);
  }

  /** mknodat(AT_FDCWD, path, S_IFREG | mode, 0): an empty file. */
  mkfile(path: string, mode: number): this {
    return this.add(`mknod ${path}`, SYS_X86_64.mknodat, [
      AT_FDCWD,
      this.#str(path),
      S_IFREG | mode,
      0,
    ]);
  }

  /** symlinkat(target, AT_FDCWD, path). */
  symlink(target: string, path: string): this {
    return this.add(`symlink ${path}`, SYS_X86_64.symlinkat, [
      this.#str(target),
      AT_FDCWD,
      this.#str(path),
    ]);
  }

  /** pivot_root(newRoot, putOld). */
  pivotRoot(newRoot: string, putOld: string): this {
    return this.add("pivot_root", SYS_X86_64.pivot_root, [
      this.#str(newRoot),
      this.#str(putOld),
    ]);
  }

  /** umount2(path, flags). */
  umount(path: string, flags: number): this {
    return this.add(`umount ${path}`, SYS_X86_64.umount2, [
      this.#str(path),
      flags,
    ]);
  }

  /** chdir to a path given as a string. */
  chdirTo(path: string): this {
    return this.add(`chdir ${path}`, SYS_X86_64.chdir, [this.#str(path)]);
  }

  /** sethostname(name). */
  hostname(name: string): this {
    const bytes = new TextEncoder().encode(name);
    return this.add("sethostname", SYS_X86_64.sethostname, [
      this.pin(bytes),
      bytes.length,
    ]);
  }

  /** setsid(): a new session, no controlling terminal. */
  setsid(): this {
    return this.add("setsid", SYS_X86_64.setsid);
  }

  /** keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a new anonymous session keyring. */
  newSessionKeyring(): this {
    return this.add("keyctl(JOIN_SESSION_KEYRING)", SYS_X86_64.keyctl, [
      KEYCTL_JOIN_SESSION_KEYRING,
      0,
    ]);
  }

  /** prlimit64(0, resource, {soft, hard}, NULL). */
  rlimit(name: string, resource: number, soft: bigint, hard: bigint): this {
    const lim = new BigUint64Array([soft, hard]);
    return this.add(`prlimit(${name})`, SYS_X86_64.prlimit64, [
      0,
      resource,
      this.pin(lim),
      0,
    ]);
  }

  /** landlock_restrict_self(ruleset, 0). */
  landlockRestrict(ruleset: number): this {
    return this.add(
      "landlock_restrict_self",
      SYS_X86_64.landlock_restrict_self,
      [ruleset, 0],
    );
  }

  /**
   * landlock_create_ruleset(&{handled}, 8, 0), the new descriptor moved
   * to `fd` (a number the parent reserved, so later ops can name it).
   */
  landlockCreate(handled: number, fd: number): this {
    const attr = new BigUint64Array([BigInt(handled)]);
    this.add(
      "landlock_create_ruleset",
      SYS_X86_64.landlock_create_ruleset,
      [
        this.pin(attr),
        attr.byteLength,
        0,
      ],
      0,
      OP_FLAG.SAVE,
    );
    return this.#moveSaved(fd, "landlock_create_ruleset");
  }

  /**
   * landlock_add_rule(ruleset, PATH_BENEATH, {rights, parent_fd}) for
   * `path` as the child sees it (opened O_PATH into `scratch`, a number
   * the parent reserved).
   */
  landlockAllow(
    ruleset: number,
    path: string,
    rights: number,
    scratch: number,
  ): this {
    this.openPathAt(path, scratch);
    // struct landlock_path_beneath_attr { __u64 allowed_access; __s32
    // parent_fd; } __attribute__((packed)): 12 bytes.
    const rule = new Uint8Array(12);
    const v = new DataView(rule.buffer);
    v.setBigUint64(0, BigInt(rights), true);
    v.setInt32(8, scratch, true);
    return this.add(`landlock_add_rule ${path}`, SYS_X86_64.landlock_add_rule, [
      ruleset,
      LANDLOCK_RULE_PATH_BENEATH,
      this.pin(rule),
      0,
    ]);
  }

  /**
   * open(path, O_PATH | O_CLOEXEC), the descriptor moved to `fd` (a number
   * the parent reserved, so later ops can name it, e.g. as
   * `/proc/self/fd/<fd>`).
   */
  openPathAt(path: string, fd: number): this {
    this.add(
      `open ${path}`,
      SYS_X86_64.openat,
      [
        AT_FDCWD,
        this.#str(path),
        O_PATH | O_CLOEXEC,
      ],
      0,
      OP_FLAG.SAVE,
    );
    return this.#moveSaved(fd, `open ${path}`);
  }

  /** dup3(saved, fd, O_CLOEXEC), then close(saved). */
  #moveSaved(fd: number, what: string): this {
    this.add(
      `dup3 (${what})`,
      SYS_X86_64.dup3,
      [0, fd, O_CLOEXEC],
      0,
      OP_FLAG.A0_SAVED,
    );
    return this.add(
      `close (${what})`,
      SYS_X86_64.close,
      [0],
      0,
      OP_FLAG.A0_SAVED,
    );
  }

  /** close(fd). */
  close(fd: number): this {
    return this.add("close", SYS_X86_64.close, [fd]);
  }

  /**
   * seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog): `filter` is the encoded
   * `struct sock_filter[]` (8 bytes each). Needs no_new_privs first.
   */
  seccompFilter(filter: Uint8Array): this {
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    const prog = new BigUint64Array(2);
    prog[0] = BigInt(filter.length / 8);
    prog[1] = BigInt(this.pin(filter));
    return this.add("seccomp", SYS_X86_64.seccomp, [
      SECCOMP_SET_MODE_FILTER,
      0,
      this.pin(prog),
    ]);
  }

  /** exit_group(code): for probes that must not exec anything. */
  exit(code: number): this {
    return this.add("exit_group", SYS_X86_64.exit_group, [code]);
  }

  /** The ops as the `struct isola_op[]` the trampoline reads. */
  encode(): Uint32Array {
    const out = new Uint32Array(Math.max(this.#words.length, WORDS_PER_OP));
    out.set(this.#words);
    return out;
  }
}

/** What the trampoline should start. */
export interface Clone3Request {
  /** clone3 flags; `CLONE_PIDFD|CLONE_VM|CLONE_VFORK` are always added. */
  flags: bigint;
  /** The child's steps before execve. */
  ops: ChildOps;
  /** `path` as a C string. */
  path: Uint8Array;
  /** `argv`. */
  argv: BigUint64Array;
  /** `envp`. */
  envp: Deno.PointerValue;
}

/** What happened. */
export type Clone3Result =
  /** The child is running the new program. */
  | { kind: "ok"; pid: number; pidfd: number }
  /** clone3 itself failed: no child. */
  | { kind: "clone-failed"; errno: number }
  /**
   * The child failed at `step` and exited with 127; the caller reaps it
   * through `pidfd`.
   */
  | {
    kind: "child-failed";
    errno: number;
    step: string;
    pid: number;
    pidfd: number;
  };

// long isola_clone3(struct isola_spawn *p);
const TRAMPOLINE_DEF = {
  parameters: ["buffer"],
  result: "i64",
} as const satisfies Deno.UnsafeCallbackDefinition;
type TrampolineDef = typeof TRAMPOLINE_DEF;

interface Loaded {
  call: (block: Uint8Array) => number | bigint;
  stackTop: bigint;
}

let loaded: Loaded | undefined;

/**
 * Maps the trampoline (once per JavaScript realm): page 0 holds the code
 * (read + execute), page 1 is the child's stack.
 */
function load(): Loaded {
  if (loaded) return loaded;
  if (!clone3Available()) {
    throw new Error("The clone3 trampoline exists only on Linux x86_64");
  }
  const mem = mmapAnonymous(2 * PAGE);
  if (typeof mem === "number") {
    throw new Error(`Cannot map the clone3 trampoline: errno ${-mem}`);
  }
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(mem, PAGE)).set(
    CLONE3_X86_64_CODE,
  );
  const r = mprotect(mem, PAGE, MMAP.PROT_READ | MMAP.PROT_EXEC);
  if (r < 0) {
    throw new Error(`Cannot protect the clone3 trampoline: errno ${-r}`);
  }
  const fn = new Deno.UnsafeFnPointer(
    mem as Deno.PointerObject<TrampolineDef>,
    TRAMPOLINE_DEF,
  );
  const base = BigInt(Deno.UnsafePointer.value(mem));
  loaded = {
    call: (block) => fn.call(block),
    stackTop: base + BigInt(2 * PAGE),
  };
  return loaded;
}

/**
 * Starts a child with clone3(CLONE_PIDFD | CLONE_VM | CLONE_VFORK |
 * `req.flags`), exit signal 0 (no SIGCHLD: reap with `__WALL`). Returns
 * when the child has exec'd or failed.
 */
export function clone3Spawn(req: Clone3Request): Clone3Result {
  const t = load();
  const pidfd = new Int32Array([-1]);
  const args = new BigUint64Array(clone_args.SIZEOF / 8);
  const flags = req.flags | CLONE.CLONE_PIDFD | CLONE.CLONE_VM |
    CLONE.CLONE_VFORK;
  args[clone_args.flags / 8] = flags;
  args[clone_args.pidfd / 8] = address(pidfd);
  args[clone_args.exit_signal / 8] = 0n;
  args[clone_args.stack / 8] = t.stackTop - BigInt(PAGE);
  args[clone_args.stack_size / 8] = BigInt(PAGE);
  const ops = req.ops.encode();
  const block = new Uint8Array(isola_spawn.SIZEOF);
  const v = new DataView(block.buffer);
  v.setBigUint64(isola_spawn.args, address(args), true);
  v.setBigUint64(isola_spawn.args_size, BigInt(clone_args.SIZEOF), true);
  v.setBigUint64(isola_spawn.ops, address(ops), true);
  v.setBigUint64(isola_spawn.nops, BigInt(req.ops.length), true);
  v.setBigUint64(isola_spawn.path, address(req.path), true);
  v.setBigUint64(isola_spawn.argv, address(req.argv), true);
  v.setBigUint64(
    isola_spawn.envp,
    BigInt(Deno.UnsafePointer.value(req.envp)),
    true,
  );
  const ret = Number(t.call(block));
  // Everything the child read stays referenced until here.
  keepAlive(args, pidfd, ops, req, req.ops);
  if (ret < 0) return { kind: "clone-failed", errno: -ret };
  const err = v.getInt32(isola_spawn.err, true);
  if (err !== 0) {
    return {
      kind: "child-failed",
      errno: err,
      step: req.ops.name(v.getInt32(isola_spawn.step, true)),
      pid: ret,
      pidfd: pidfd[0],
    };
  }
  return { kind: "ok", pid: ret, pidfd: pidfd[0] };
}

const sink: { values: unknown } = { values: undefined };
function keepAlive(...values: unknown[]): void {
  sink.values = values;
  sink.values = undefined;
}
