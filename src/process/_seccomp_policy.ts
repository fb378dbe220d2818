/**
 * The jail's seccomp-bpf filter, as a program for the assembler in
 * `ffi/seccomp.ts`: anything but x86_64 is killed, the x32 ABI and
 * clone3(2) fail with `ENOSYS` (so the C library falls back to clone(2),
 * whose flags a filter can read), and a deny-list fails with `EPERM`:
 * the keyring, io_uring, bpf, perf events, userfaultfd, every way to make
 * or enter a namespace or change mounts, ptrace and cross-process memory,
 * kernel modules and kexec, ioctls that fake terminal input, and the
 * socket families that cross network namespaces (vsock) or connect tasks
 * inside one without a privilege (netlink's NETLINK_USERSOCK).
 * Everything else is allowed.
 *
 * @module
 */
import {
  assembleBpf,
  AUDIT_ARCH_X86_64,
  type BpfOp,
  IOCTL_DENIED,
  seccomp_data,
  SECCOMP_RET,
  SOCKET_DENIED,
  SYS_DENIED_X86_64 as SYS,
  X32_SYSCALL_BIT,
} from "../../ffi/seccomp.ts";
import { CLONE } from "../../ffi/spawn.ts";
import { E } from "../../ffi/errno.ts";

/** Calls refused outright with EPERM (names as in `asm/unistd_64.h`). */
export const DENIED_SYSCALLS: readonly (keyof typeof SYS)[] = Object.freeze([
  "keyctl",
  "add_key",
  "request_key",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "bpf",
  "perf_event_open",
  "userfaultfd",
  "unshare",
  "setns",
  "mount",
  "umount2",
  "pivot_root",
  "chroot",
  "open_tree",
  "move_mount",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "pidfd_getfd",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "acct",
  "swapon",
  "swapoff",
  "reboot",
  "iopl",
  "ioperm",
  "quotactl",
  "open_by_handle_at",
  "syslog",
]);

/** clone(2) flags that make a namespace: refused in the jail. */
const NAMESPACE_FLAGS = Number(
  CLONE.CLONE_NEWNS | CLONE.CLONE_NEWCGROUP | CLONE.CLONE_NEWUTS |
    CLONE.CLONE_NEWIPC | CLONE.CLONE_NEWUSER | CLONE.CLONE_NEWPID |
    CLONE.CLONE_NEWNET | CLONE.CLONE_NEWTIME,
);

/** The low 32 bits of argument `i` in `struct seccomp_data`. */
function arg(i: number): number {
  return seccomp_data.args + 8 * i;
}

/** Where a system call number goes: a label of the program below. */
type Verdict = "eperm" | "enosys" | "clone" | "ioctl" | "socket";

/** At most this many equality tests end a branch of the number tree. */
const LEAF_TESTS = 4;

/**
 * The number tests as a binary search over the sorted numbers: `jge`
 * splits until a branch holds at most {@linkcode LEAF_TESTS}, which are
 * tested one by one before the branch allows the call. A call then runs
 * ~8 instructions instead of one test per listed number, and the kernel,
 * which runs the filter once per system call number at install to find
 * those it always allows (its action cache), does a fraction of the work:
 * installing a 58-instruction linear list took ~75 µs of each spawn here.
 */
function numberTree(
  cases: readonly (readonly [number, Verdict])[],
  name: string,
): BpfOp[] {
  if (cases.length <= LEAF_TESTS) {
    return [
      ...cases.map(([k, then]): BpfOp => ({ op: "jeq", k, then })),
      { op: "ret", k: SECCOMP_RET.ALLOW },
    ];
  }
  const mid = cases.length >> 1;
  const high = `${name}h`;
  return [
    { op: "jge", k: cases[mid][0], then: high },
    ...numberTree(cases.slice(0, mid), `${name}l`),
    { op: "label", name: high },
    ...numberTree(cases.slice(mid), high),
  ];
}

/** The filter as assembler input (exported for tests). */
export function jailFilterProgram(): BpfOp[] {
  const cases: [number, Verdict][] = [
    [SYS.clone3, "enosys"],
    [SYS.clone, "clone"],
    [SYS.ioctl, "ioctl"],
    [SYS.socket, "socket"],
    ...DENIED_SYSCALLS.map((name): [number, Verdict] => [SYS[name], "eperm"]),
  ];
  cases.sort((a, b) => a[0] - b[0]);
  return [
    { op: "ld", offset: seccomp_data.arch },
    { op: "jeq", k: AUDIT_ARCH_X86_64, else: "kill" },
    { op: "ld", offset: seccomp_data.nr },
    { op: "jge", k: X32_SYSCALL_BIT, then: "enosys" },
    ...numberTree(cases, "n"),
    { op: "label", name: "clone" },
    // clone(flags, ...): x86_64 passes the flags first.
    { op: "ld", offset: arg(0) },
    { op: "jset", k: NAMESPACE_FLAGS, then: "eperm" },
    { op: "ret", k: SECCOMP_RET.ALLOW },
    { op: "label", name: "ioctl" },
    // ioctl(fd, request, ...): the kernel takes the request as 32 bits.
    { op: "ld", offset: arg(1) },
    { op: "jeq", k: IOCTL_DENIED.TIOCSTI, then: "eperm" },
    { op: "jeq", k: IOCTL_DENIED.TIOCLINUX, then: "eperm" },
    { op: "ret", k: SECCOMP_RET.ALLOW },
    { op: "label", name: "socket" },
    // socket(domain, type, protocol). vsock reaches the hypervisor and
    // other guests whatever the network namespace; NETLINK_USERSOCK lets
    // two jailed children in one shared network namespace talk
    // (_shared_network.ts), which Landlock's abstract-socket scope does not
    // cover.
    { op: "ld", offset: arg(0) },
    { op: "jeq", k: SOCKET_DENIED.AF_VSOCK, then: "eperm" },
    { op: "jeq", k: SOCKET_DENIED.AF_NETLINK, else: "allow" },
    { op: "ld", offset: arg(2) },
    { op: "jeq", k: SOCKET_DENIED.NETLINK_USERSOCK, then: "eperm" },
    { op: "label", name: "allow" },
    { op: "ret", k: SECCOMP_RET.ALLOW },
    { op: "label", name: "eperm" },
    { op: "ret", k: SECCOMP_RET.ERRNO | E.EPERM },
    { op: "label", name: "enosys" },
    { op: "ret", k: SECCOMP_RET.ERRNO | E.ENOSYS },
    { op: "label", name: "kill" },
    { op: "ret", k: SECCOMP_RET.KILL_PROCESS },
  ];
}

let filter: Uint8Array | undefined;

/** The assembled filter (`struct sock_filter[]`), built once. */
export function jailFilter(): Uint8Array {
  filter ??= assembleBpf(jailFilterProgram());
  return filter;
}
