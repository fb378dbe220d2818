/**
 * seccomp-bpf (`<linux/filter.h>`, `<linux/seccomp.h>`,
 * `<linux/audit.h>`): a small assembler for classic BPF programs, the
 * `struct seccomp_data` offsets a filter reads, its return values, and the
 * x86_64 system call numbers a jail denies (`asm/unistd_64.h`).
 *
 * A program is a list of instructions with symbolic jump targets
 * (labels); {@linkcode assembleBpf} resolves them into the 8-byte
 * `struct sock_filter` records seccomp(2) takes. Classic BPF jumps only
 * forward, by at most 255 instructions for a conditional jump.
 *
 * @module
 */

/** BPF instruction classes and fields (`<linux/bpf_common.h>`). */
export const BPF = Object.freeze({
  LD: 0x00,
  JMP: 0x05,
  RET: 0x06,
  W: 0x00,
  ABS: 0x20,
  JEQ: 0x10,
  JGE: 0x30,
  JSET: 0x40,
  K: 0x00,
  JA: 0x00,
});

/** `struct seccomp_data` offsets (what a filter loads). */
export const seccomp_data = Object.freeze({
  nr: 0, // int
  arch: 4, // __u32, AUDIT_ARCH_*
  instruction_pointer: 8, // __u64
  args: 16, // __u64[6]; the low 32 bits of args[i] are at 16 + 8 * i
  SIZEOF: 64,
});

/** seccomp filter return values (`SECCOMP_RET_*`). */
export const SECCOMP_RET = Object.freeze({
  KILL_PROCESS: 0x80000000,
  ERRNO: 0x00050000,
  ALLOW: 0x7fff0000,
});

/** `AUDIT_ARCH_X86_64` (EM_X86_64 | __AUDIT_ARCH_64BIT | LE). */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
/** System call numbers with this bit set are the x32 ABI on x86_64. */
export const X32_SYSCALL_BIT = 0x40000000;

/** x86_64 system call numbers a jail denies (`asm/unistd_64.h`). */
export const SYS_DENIED_X86_64 = Object.freeze({
  ioctl: 16,
  socket: 41,
  ptrace: 101,
  syslog: 103,
  pivot_root: 155,
  chroot: 161,
  acct: 163,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  iopl: 172,
  ioperm: 173,
  init_module: 175,
  delete_module: 176,
  quotactl: 179,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  unshare: 272,
  perf_event_open: 298,
  open_by_handle_at: 304,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  finit_module: 313,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  clone3: 435,
  pidfd_getfd: 438,
  mount_setattr: 442,
  clone: 56,
});

/** ioctl(2) requests a jail denies: faking terminal input (`<asm/ioctls.h>`). */
export const IOCTL_DENIED = Object.freeze({
  TIOCSTI: 0x5412,
  TIOCLINUX: 0x541c,
});

/**
 * socket(2) arguments a jail refuses (`<sys/socket.h>`,
 * `<linux/netlink.h>`): vsock, which no network namespace confines, and
 * NETLINK_USERSOCK, the one netlink protocol on which unprivileged sockets
 * can send to each other (a channel between tasks of one namespace).
 */
export const SOCKET_DENIED = Object.freeze({
  AF_VSOCK: 40,
  AF_NETLINK: 16,
  NETLINK_USERSOCK: 2,
});

/** One instruction: an operation, or a label marking the next one. */
export type BpfOp =
  /** Load the 32-bit word at `offset` of `struct seccomp_data`. */
  | { op: "ld"; offset: number }
  /** Compare the loaded word with `k`; jump to `then` or `else` (labels; omitted: next). */
  | {
    op: "jeq" | "jge" | "jset";
    k: number;
    then?: string;
    else?: string;
  }
  /** Jump to `to`. */
  | { op: "ja"; to: string }
  /** Return `k` (a {@linkcode SECCOMP_RET} value). */
  | { op: "ret"; k: number }
  /** Label for the next instruction. */
  | { op: "label"; name: string };

const JUMP_MAX = 255;

/**
 * Assembles `program` into `struct sock_filter[]` bytes (little-endian:
 * u16 code, u8 jt, u8 jf, u32 k).
 *
 * @throws {RangeError} On an unknown label, a backward jump, or a
 *   conditional jump further than 255 instructions.
 */
export function assembleBpf(program: readonly BpfOp[]): Uint8Array {
  const labels = new Map<string, number>();
  let n = 0;
  for (const ins of program) {
    if (ins.op === "label") {
      if (labels.has(ins.name)) {
        throw new RangeError(`BPF label ${ins.name} defined twice`);
      }
      labels.set(ins.name, n);
    } else n++;
  }
  const out = new Uint8Array(n * 8);
  const v = new DataView(out.buffer);
  const offset = (from: number, label: string | undefined): number => {
    if (label === undefined) return 0;
    const to = labels.get(label);
    if (to === undefined) throw new RangeError(`BPF label ${label} not found`);
    const d = to - from - 1;
    if (d < 0) throw new RangeError(`BPF jump to ${label} goes backward`);
    return d;
  };
  let i = 0;
  for (const ins of program) {
    if (ins.op === "label") continue;
    let code = 0, jt = 0, jf = 0, k = 0;
    switch (ins.op) {
      case "ld":
        code = BPF.LD | BPF.W | BPF.ABS;
        k = ins.offset;
        break;
      case "jeq":
      case "jge":
      case "jset":
        code = BPF.JMP | BPF.K |
          (ins.op === "jeq" ? BPF.JEQ : ins.op === "jge" ? BPF.JGE : BPF.JSET);
        k = ins.k;
        jt = offset(i, ins.then);
        jf = offset(i, ins.else);
        if (jt > JUMP_MAX || jf > JUMP_MAX) {
          throw new RangeError(`BPF conditional jump at ${i} is too far`);
        }
        break;
      case "ja":
        code = BPF.JMP | BPF.JA;
        k = offset(i, ins.to);
        break;
      case "ret":
        code = BPF.RET | BPF.K;
        k = ins.k;
        break;
    }
    v.setUint16(i * 8, code, true);
    v.setUint8(i * 8 + 2, jt);
    v.setUint8(i * 8 + 3, jf);
    v.setUint32(i * 8 + 4, k >>> 0, true);
    i++;
  }
  return out;
}
