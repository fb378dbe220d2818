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
import { CLONE, mapCode, open, sysCall, W, waitidPidfd } from "./spawn.ts";
import { close, read } from "./unistd.ts";
import { clone_args } from "./structs.ts";
import { E } from "./errno.ts";
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
    "184531f64531ff4d39ee7374498b0424498b7c240841f64424380174034c89ff" +
    "498b742410498b5424184d8b5424204d8b4424284531c90f0541f64424380874" +
    "054885c07f6441f64424380274034989c7483d01f0ffff7316498b4c24304885" +
    "c974144839c8740f48c7c0fdffffff41f644243804741c4983c44049ffc6eb87" +
    "488b7b20488b7328488b5330b83b0000000f05f7d88943384489733cbf7f0000" +
    "00b8e70000000f050f0b31ffb8e70000000f050f0b",
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
  /**
   * A positive result ends the task with exit_group(0): after a clone3 op
   * the caller stops and the new task (result 0) goes on.
   */
  QUIT_IF_POSITIVE: 8,
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
  setns: 308,
  seccomp: 317,
  clone3: 435,
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
/** Bytes of one arena chunk of {@linkcode ChildOps} (off V8's heap). */
const ARENA_CHUNK = 4096;
/** Arena alignment: the structs hold 64-bit fields. */
const ARENA_ALIGN = 8;
const EMPTY_ARENA = new Uint8Array(0);
const ENCODER = new TextEncoder();
/**
 * `struct landlock_ruleset_attr`: handled_access_fs, handled_access_net,
 * scoped (u64 each). Kernels with a shorter struct accept it while the
 * fields they do not know are 0.
 */
const LANDLOCK_RULESET_ATTR_BYTES = 24;
/** `struct landlock_path_beneath_attr` (packed: u64 + s32). */
const LANDLOCK_PATH_BENEATH_BYTES = 12;

// struct kernel_sigaction { handler = SIG_DFL, flags, restorer, mask } and
// an empty sigset: module-lifetime buffers the reset ops point at.
const SIG_DFL_ACTION = new BigUint64Array(4);
const EMPTY_SIGSET = new BigUint64Array(1);
const FULL_SIGSET = new BigUint64Array([0xffffffffffffffffn]);
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
  // Small buffers (C strings, structs) are copied into arena chunks: V8
  // keeps typed arrays of up to 64 bytes on its heap, and taking the
  // address of one moves it off (~10 µs each, tens per jailed spawn).
  #arena: Uint8Array = EMPTY_ARENA;
  #arenaView: DataView = new DataView(EMPTY_ARENA.buffer);
  #arenaAddr = 0;
  #arenaUsed = 0;

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

  /**
   * `size` zeroed bytes in the arena (8-byte aligned), kept alive with
   * these ops: their address, and a view to fill them through.
   */
  #alloc(size: number): { at: number; view: DataView; offset: number } {
    let at = (this.#arenaUsed + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (at + size > this.#arena.length) {
      this.#arena = new Uint8Array(Math.max(ARENA_CHUNK, size));
      this.#arenaView = new DataView(this.#arena.buffer);
      this.#arenaAddr = addr(this.#arena);
      this.#keep.push(this.#arena);
      at = 0;
    }
    this.#arenaUsed = at + size;
    return { at: this.#arenaAddr + at, view: this.#arenaView, offset: at };
  }

  /** `u64` values in the arena; returns their address. */
  #u64s(...values: bigint[]): number {
    const a = this.#alloc(values.length * 8);
    values.forEach((v, i) => a.view.setBigUint64(a.offset + i * 8, v, true));
    return a.at;
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

  /** chdir(path) where it exists; a failure leaves the directory as is. */
  chdirIfVisible(path: string): this {
    return this.add(
      `chdir ${path}`,
      SYS_X86_64.chdir,
      [this.#str(path)],
      0,
      OP_FLAG.MAY_FAIL,
    );
  }

  /** A C string of `s`, kept alive with these ops; returns its address. */
  #str(s: string): number {
    return this.#bytes(s + "\0").at;
  }

  /** `s` UTF-8 encoded into the arena: its address and length. */
  #bytes(s: string): { at: number; length: number } {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const a = this.#alloc(s.length * 3);
    const { written } = ENCODER.encodeInto(
      s,
      this.#arena.subarray(a.offset, a.offset + s.length * 3),
    );
    this.#arenaUsed = a.offset + written;
    return { at: a.at, length: written };
  }

  /**
   * Writes `content` to the file at `path` (open, one write, close): e.g.
   * the child's own `/proc/self/uid_map`.
   */
  writeFile(path: string, content: string): this {
    const bytes = this.#bytes(content);
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
        bytes.at,
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
    const attr = this.#alloc(mount_attr.SIZEOF);
    attr.view.setBigUint64(
      attr.offset + mount_attr.attr_set,
      BigInt(set),
      true,
    );
    return this.add(`mount_setattr ${path}`, SYS_X86_64.mount_setattr, [
      AT_FDCWD,
      this.#str(path),
      recursive ? AT_RECURSIVE : 0,
      attr.at,
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
    const bytes = this.#bytes(name);
    return this.add("sethostname", SYS_X86_64.sethostname, [
      bytes.at,
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
    return this.add(`prlimit(${name})`, SYS_X86_64.prlimit64, [
      0,
      resource,
      this.#u64s(soft, hard),
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
   * landlock_create_ruleset(&{handled, 0, scoped}, 24, 0), the new
   * descriptor moved to `fd` (a number the parent reserved, so later ops
   * can name it). `scoped`: LANDLOCK_SCOPE_* bits (0 below ABI 6).
   */
  landlockCreate(handled: number, fd: number, scoped = 0): this {
    this.add(
      "landlock_create_ruleset",
      SYS_X86_64.landlock_create_ruleset,
      [
        this.#u64s(BigInt(handled), 0n, BigInt(scoped)),
        LANDLOCK_RULESET_ATTR_BYTES,
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
    const rule = this.#alloc(LANDLOCK_PATH_BENEATH_BYTES);
    rule.view.setBigUint64(rule.offset, BigInt(rights), true);
    rule.view.setInt32(rule.offset + 8, scratch, true);
    return this.add(`landlock_add_rule ${path}`, SYS_X86_64.landlock_add_rule, [
      ruleset,
      LANDLOCK_RULE_PATH_BENEATH,
      rule.at,
      0,
    ]);
  }

  /**
   * open(path, O_PATH | O_CLOEXEC), the descriptor moved to `fd` (a number
   * the parent reserved, so later ops can name it, e.g. as
   * `/proc/self/fd/<fd>`).
   */
  openPathAt(path: string, fd: number): this {
    return this.openAt(path, O_PATH, fd);
  }

  /**
   * open(path, `flags` | O_CLOEXEC), the descriptor moved to `fd` (a
   * number the parent reserved).
   */
  openAt(path: string, flags: number, fd: number): this {
    this.add(
      `open ${path}`,
      SYS_X86_64.openat,
      [AT_FDCWD, this.#str(path), flags | O_CLOEXEC],
      0,
      OP_FLAG.SAVE,
    );
    return this.#moveSaved(fd, `open ${path}`);
  }

  /** setns(fd, nstype): join the namespace `fd` refers to. */
  setns(fd: number, nstype: bigint): this {
    return this.add(`setns ${nstype}`, SYS_X86_64.setns, [fd, Number(nstype)]);
  }

  /**
   * clone3 with CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_PARENT |
   * CLONE_PARENT_SETTID and `flags`, on the same stack (neither task
   * touches it): the task that makes this call waits until the new one has
   * exec'd or failed, then exits with 0; the new one, a child of the
   * spawning process (CLONE_PARENT), goes on with the next op. Its pid and
   * pidfd are written where the returned getters read them (the pidfd
   * lands in the caller's descriptor table: start the first task with
   * CLONE_FILES so it is the spawning process's).
   */
  cloneStage(flags: bigint): { pid: () => number; pidfd: () => number } {
    const out = this.#alloc(8); // int pidfd; int pid
    out.view.setInt32(out.offset, -1, true);
    const all = flags | CLONE.CLONE_VM | CLONE.CLONE_VFORK |
      CLONE.CLONE_PIDFD | CLONE.CLONE_PARENT | CLONE.CLONE_PARENT_SETTID;
    const args = this.#alloc(clone_args.SIZEOF);
    args.view.setBigUint64(args.offset + clone_args.flags, all, true);
    args.view.setBigUint64(
      args.offset + clone_args.pidfd,
      BigInt(out.at),
      true,
    );
    args.view.setBigUint64(
      args.offset + clone_args.parent_tid,
      BigInt(out.at + 4),
      true,
    );
    this.add(
      "clone3",
      SYS_X86_64.clone3,
      [args.at, clone_args.SIZEOF],
      0,
      OP_FLAG.QUIT_IF_POSITIVE,
    );
    const { view, offset } = out;
    return {
      pidfd: () => view.getInt32(offset, true),
      pid: () => view.getInt32(offset + 4, true),
    };
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
    const prog = this.#u64s(
      BigInt(filter.length / 8),
      BigInt(this.pin(filter)),
    );
    return this.add("seccomp", SYS_X86_64.seccomp, [
      SECCOMP_SET_MODE_FILTER,
      0,
      prog,
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
  /**
   * A two-stage spawn: what `ops.cloneStage()` returned. The first task
   * then shares this process's descriptor table (CLONE_FILES: the second
   * task's pidfd lands there), is reaped here once the second has exec'd,
   * and the result describes the second.
   */
  stage?: { pid: () => number; pidfd: () => number };
  /** CLONE_FILES: the child's opens land in this process's table. */
  shareFiles?: boolean;
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
  // Page 0 the code, page 1 the child's stack.
  const mem = mapCode(CLONE3_X86_64_CODE, 1);
  if (typeof mem === "number") {
    throw new Error(`Cannot map the clone3 trampoline: errno ${-mem}`);
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
    CLONE.CLONE_VFORK |
    (req.stage || req.shareFiles ? CLONE.CLONE_FILES : 0n);
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
  // A child that shares this process's descriptor table (the first stage
  // of a two-stage spawn, the shared-namespace helper) starts with every
  // signal blocked: it runs with default handlers (CLONE_CLEAR_SIGHAND),
  // and a signal to the process group must not end it before its first op.
  const masked = req.stage !== undefined || req.shareFiles === true;
  if (masked) setThreadMask(FULL_SIGSET, SAVED_SIGSET);
  let ret: number;
  try {
    ret = Number(t.call(block));
  } finally {
    if (masked) setThreadMask(SAVED_SIGSET, null);
  }
  // Everything the child read stays referenced until here.
  keepAlive(args, pidfd, ops, req, req.ops);
  if (ret < 0) return { kind: "clone-failed", errno: -ret };
  const err = v.getInt32(isola_spawn.err, true);
  if (req.stage !== undefined) {
    const second = req.stage.pidfd();
    if (second >= 0) {
      // The first task ran only up to the clone and has exited.
      reapExited(pidfd[0]);
      const pid = req.stage.pid();
      return err !== 0
        ? {
          kind: "child-failed",
          errno: err,
          step: req.ops.name(v.getInt32(isola_spawn.step, true)),
          pid,
          pidfd: second,
        }
        : { kind: "ok", pid, pidfd: second };
    }
    if (err === 0) {
      // Killed before its clone (a signal to the process group).
      return {
        kind: "child-failed",
        errno: E.ECHILD,
        step: "clone3",
        pid: ret,
        pidfd: pidfd[0],
      };
    }
  }
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

const SAVED_SIGSET = new BigUint64Array(1);

/** rt_sigprocmask(SIG_SETMASK, set, old) on the calling thread only. */
function setThreadMask(set: BigUint64Array, old: BigUint64Array | null): void {
  sysCall(
    SYS_X86_64.rt_sigprocmask,
    SIG_SETMASK,
    addr(set),
    old === null ? 0 : addr(old),
    SIGSET_BYTES,
  );
}

/**
 * Reaps a child known to have exited (or about to) through its pidfd, then
 * closes the pidfd.
 */
export function reapExited(pidfd: number): void {
  while (waitidPidfd(pidfd, W.WEXITED | W.__WALL) === -E.EINTR);
  close(pidfd);
}

const sink: { values: unknown } = { values: undefined };
function keepAlive(...values: unknown[]): void {
  sink.values = values;
  sink.values = undefined;
}
