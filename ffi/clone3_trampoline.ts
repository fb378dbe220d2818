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
import { CLONE, MMAP, mmapAnonymous, mprotect } from "./spawn.ts";
import { clone_args } from "./structs.ts";

/** The bytes of `isola_clone3` from `ffi/clone3_x86_64.S` (.text). */
export const CLONE3_X86_64_CODE: Uint8Array = hex(
  "534889fb488b3b488b7308b8b30100000f054885c074025bc34c8b63104c8b6b" +
    "184531f64d39ee7349498b0424498b7c2408498b742410498b5424184d8b5424" +
    "204531c04531c90f05483d01f0ffff7334498b4c24284885c9740e4839c87409" +
    "48c7c0fdffffffeb1c4983c43049ffc6ebb2488b7b20488b7328488b5330b83b" +
    "0000000f05f7d88943384489733cbf7f000000b8e70000000f050f0b",
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
  expect: 40, // long, 0 = any non-error result
  SIZEOF: 48,
});

/** x86_64 system call numbers used in the child (`asm/unistd_64.h`). */
export const SYS_X86_64 = Object.freeze({
  rt_sigaction: 13,
  rt_sigprocmask: 14,
  fcntl: 72,
  chdir: 80,
  getppid: 110,
  prctl: 157,
  exit_group: 231,
  dup3: 292,
  close_range: 436,
});

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
let resetOps: { words: number[]; names: string[] } | undefined;

/**
 * The system calls the child makes between clone3 and execve, in order.
 * Each has a name, used to say which step failed. Arguments are
 * non-negative integers below 2^53 (descriptors, flags, user addresses).
 */
export class ChildOps {
  // Each op as 12 u32 words (lo, hi of six longs).
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

  /** Appends `syscall(nr, a0..a3)`; a non-zero `expect` must be returned. */
  add(
    name: string,
    nr: number,
    args: readonly number[] = [],
    expect = 0,
  ): this {
    for (
      const v of [
        nr,
        args[0] ?? 0,
        args[1] ?? 0,
        args[2] ?? 0,
        args[3] ?? 0,
        expect,
      ]
    ) {
      this.#words.push(v >>> 0, Math.floor(v / 0x100000000));
    }
    this.#names.push(name);
    return this;
  }

  /**
   * Every signal (1-64) back to its default action, ignored ones too:
   * `SIG_IGN` survives execve, and the Deno process ignores SIGPIPE and
   * glibc's internal signals 32 and 33. Then an empty signal mask, as
   * POSIX_SPAWN_SETSIGDEF/SETSIGMASK do.
   */
  resetSignals(): this {
    if (resetOps === undefined) {
      const ops = new ChildOps();
      for (let sig = 1; sig <= 64; sig++) {
        if (sig === 9 || sig === 19) continue; // SIGKILL, SIGSTOP
        ops.add("rt_sigaction", SYS_X86_64.rt_sigaction, [
          sig,
          addr(SIG_DFL_ACTION),
          0,
          8,
        ]);
      }
      ops.add("rt_sigprocmask", SYS_X86_64.rt_sigprocmask, [
        SIG_SETMASK,
        addr(EMPTY_SIGSET),
        0,
        8,
      ]);
      resetOps = { words: ops.#words, names: ops.#names };
    }
    this.#words.push(...resetOps.words);
    this.#names.push(...resetOps.names);
    return this;
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
