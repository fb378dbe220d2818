import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  assembleBpf,
  AUDIT_ARCH_X86_64,
  BPF,
  IOCTL_DENIED,
  seccomp_data,
  SECCOMP_RET,
  SOCKET_DENIED,
  SYS_DENIED_X86_64,
  X32_SYSCALL_BIT,
} from "../../ffi/seccomp.ts";
import { mount_attr, MS, RLIMIT } from "../../ffi/mount.ts";
import { SYS_X86_64 } from "../../ffi/clone3_trampoline.ts";
import {
  DENIED_SYSCALLS,
  jailFilter,
  jailFilterProgram,
} from "../../src/process/_seccomp_policy.ts";

const hex = (b: Uint8Array) =>
  [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("`assembleBpf()` encodes sock_filter records and resolves labels forward", () => {
  const code = assembleBpf([
    { op: "ld", offset: seccomp_data.arch },
    { op: "jeq", k: AUDIT_ARCH_X86_64, else: "kill" },
    { op: "ret", k: SECCOMP_RET.ALLOW },
    { op: "label", name: "kill" },
    { op: "ret", k: SECCOMP_RET.KILL_PROCESS },
  ]);
  // u16 code, u8 jt, u8 jf, u32 k (LE): ld abs 0x20 k=4; jeq 0x15 jt=0 jf=1;
  // BPF_RET|BPF_K=0x06.
  assertEquals(
    hex(code),
    "2000000004000000" + "150000013e0000c0" + "060000000000ff7f" +
      "0600000000000080",
  );
});

Deno.test("`assembleBpf()` refuses unknown labels, backward and too long jumps", () => {
  assertThrows(
    () => assembleBpf([{ op: "ja", to: "nowhere" }]),
    RangeError,
    "not found",
  );
  assertThrows(
    () =>
      assembleBpf([
        { op: "label", name: "top" },
        { op: "ja", to: "top" },
      ]),
    RangeError,
    "backward",
  );
  const far = Array.from(
    { length: 300 },
    () => ({ op: "ret", k: 0 }) as const,
  );
  assertThrows(
    () =>
      assembleBpf([
        { op: "jeq", k: 1, then: "end" },
        ...far,
        { op: "label", name: "end" },
        { op: "ret", k: 0 },
      ]),
    RangeError,
    "too far",
  );
});

/**
 * Runs the assembled filter the way the kernel's classic-BPF interpreter
 * would, for the instructions the assembler emits (ld abs, jeq/jge/jset
 * with k, ja, ret k), on one `struct seccomp_data`.
 */
function runFilter(
  code: Uint8Array,
  data: { nr: number; arch: number; args?: number[] },
  ran: { steps: number } = { steps: 0 },
): number {
  const v = new DataView(code.buffer, code.byteOffset, code.byteLength);
  const word = (offset: number): number => {
    if (offset === seccomp_data.nr) return data.nr >>> 0;
    if (offset === seccomp_data.arch) return data.arch >>> 0;
    const i = (offset - seccomp_data.args) / 8;
    if (Number.isInteger(i) && i >= 0 && i < 6) {
      return (data.args?.[i] ?? 0) >>> 0;
    }
    throw new Error(`load at ${offset}`);
  };
  let a = 0;
  for (let pc = 0; pc < code.length / 8; pc++) {
    if (++ran.steps > code.length / 8) throw new Error("filter loops");
    const op = v.getUint16(pc * 8, true);
    const jt = v.getUint8(pc * 8 + 2);
    const jf = v.getUint8(pc * 8 + 3);
    const k = v.getUint32(pc * 8 + 4, true);
    if (op === (BPF.LD | BPF.W | BPF.ABS)) a = word(k);
    else if (op === (BPF.RET | BPF.K)) return k;
    else if (op === (BPF.JMP | BPF.JA)) pc += k;
    else if ((op & 0x07) === BPF.JMP) {
      const cond = op & 0xf0;
      const taken = cond === BPF.JEQ
        ? a === k
        : cond === BPF.JGE
        ? a >= k
        : cond === BPF.JSET
        ? (a & k) !== 0
        : (() => {
          throw new Error(`jump ${op.toString(16)}`);
        })();
      pc += taken ? jt : jf;
    } else throw new Error(`op ${op.toString(16)} at ${pc}`);
  }
  throw new Error("fell off the end");
}

const EPERM = SECCOMP_RET.ERRNO | 1;
const ENOSYS = SECCOMP_RET.ERRNO | 38;

Deno.test("the jail's seccomp filter gives every system call number its verdict", () => {
  const code = jailFilter();
  const denied = new Set<number>(
    DENIED_SYSCALLS.map((n) => SYS_DENIED_X86_64[n]),
  );
  const x86 = AUDIT_ARCH_X86_64;
  let allowed = 0;
  for (let nr = 0; nr < 1024; nr++) {
    const got = runFilter(code, { nr, arch: x86 });
    const want = nr === SYS_DENIED_X86_64.clone3
      ? ENOSYS
      : denied.has(nr)
      ? EPERM
      : SECCOMP_RET.ALLOW;
    assertEquals(got, want, `system call ${nr}`);
    if (got === SECCOMP_RET.ALLOW) allowed++;
  }
  assertEquals(allowed, 1024 - denied.size - 1);
  // Another architecture is killed; the x32 ABI fails with ENOSYS.
  const i386 = 0x40000003;
  assertEquals(
    runFilter(code, { nr: 0, arch: i386 }),
    SECCOMP_RET.KILL_PROCESS,
  );
  assertEquals(
    runFilter(code, { nr: X32_SYSCALL_BIT | 0, arch: x86 }),
    ENOSYS,
  );
  // clone(2) is read by its flags; ioctl(2) by its request.
  const clone = SYS_DENIED_X86_64.clone;
  assertEquals(
    runFilter(code, { nr: clone, arch: x86, args: [0x11] }),
    SECCOMP_RET.ALLOW,
  );
  assertEquals(
    runFilter(code, { nr: clone, arch: x86, args: [0x10000000] }), // CLONE_NEWUSER
    EPERM,
  );
  const ioctl = SYS_DENIED_X86_64.ioctl;
  for (const req of Object.values(IOCTL_DENIED)) {
    assertEquals(
      runFilter(code, { nr: ioctl, arch: x86, args: [0, req] }),
      EPERM,
    );
  }
  assertEquals(
    runFilter(code, { nr: ioctl, arch: x86, args: [0, 0x5401] }),
    SECCOMP_RET.ALLOW,
  ); // TCGETS
  // socket(2) by its family, and for netlink by its protocol.
  const socket = SYS_DENIED_X86_64.socket;
  const { AF_VSOCK, AF_NETLINK, NETLINK_USERSOCK } = SOCKET_DENIED;
  const AF_UNIX = 1;
  const AF_INET = 2;
  const NETLINK_ROUTE = 0;
  const SOCK_STREAM = 1;
  const SOCK_RAW = 3;
  const socketVerdict = (args: number[]) =>
    runFilter(code, { nr: socket, arch: x86, args });
  assertEquals(socketVerdict([AF_VSOCK, SOCK_STREAM, 0]), EPERM);
  assertEquals(socketVerdict([AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK]), EPERM);
  assertEquals(
    socketVerdict([AF_NETLINK, SOCK_RAW, NETLINK_ROUTE]),
    SECCOMP_RET.ALLOW,
  );
  // A protocol number 2 is only refused for netlink.
  assertEquals(socketVerdict([AF_INET, SOCK_STREAM, 2]), SECCOMP_RET.ALLOW);
  assertEquals(socketVerdict([AF_UNIX, SOCK_STREAM, 0]), SECCOMP_RET.ALLOW);
});

Deno.test("the jail's seccomp filter reaches any verdict in few instructions (a search tree, not a list)", () => {
  const code = assembleBpf(jailFilterProgram());
  let worst = 0;
  for (let nr = 0; nr < 512; nr++) {
    const ran = { steps: 0 };
    runFilter(code, { nr, arch: AUDIT_ARCH_X86_64 }, ran);
    worst = Math.max(worst, ran.steps);
  }
  assert(worst <= 16, `worst path ${worst} instructions`);
});

const hasCc = (() => {
  try {
    return new Deno.Command("gcc", { args: ["--version"], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    "jail constants (system call numbers, mount, rlimit, ioctl, seccomp_data) match the C headers",
  ignore: !hasCc || Deno.build.arch !== "x86_64",
  async fn() {
    const checks: string[] = [];
    const eq = (c: string, v: number) =>
      checks.push(`_Static_assert((${c}) == ${v}, "${c}");`);
    for (const [name, nr] of Object.entries(SYS_DENIED_X86_64)) {
      eq(`__NR_${name}`, nr);
    }
    for (const [name, nr] of Object.entries(SYS_X86_64)) eq(`__NR_${name}`, nr);
    for (const [name, v] of Object.entries(MS)) eq(name, v);
    for (const [name, v] of Object.entries(RLIMIT)) eq(name, v);
    for (const [name, v] of Object.entries(IOCTL_DENIED)) eq(name, v);
    for (const [name, v] of Object.entries(SOCKET_DENIED)) eq(name, v);
    eq("AUDIT_ARCH_X86_64", AUDIT_ARCH_X86_64);
    eq("SECCOMP_RET_KILL_PROCESS", SECCOMP_RET.KILL_PROCESS);
    eq("SECCOMP_RET_ERRNO", SECCOMP_RET.ERRNO);
    eq("SECCOMP_RET_ALLOW", SECCOMP_RET.ALLOW);
    for (const f of ["nr", "arch", "args"] as const) {
      eq(`offsetof(struct seccomp_data, ${f})`, seccomp_data[f]);
    }
    eq("sizeof(struct seccomp_data)", seccomp_data.SIZEOF);
    eq("sizeof(struct mount_attr)", mount_attr.SIZEOF);
    const program = `#define _GNU_SOURCE
#include <stddef.h>
#include <asm/unistd.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <linux/mount.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/netlink.h>
${checks.join("\n")}
`;
    const child = new Deno.Command("gcc", {
      args: ["-fsyntax-only", "-x", "c", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(program));
    await w.close();
    const out = await child.output();
    assertEquals(out.success, true, new TextDecoder().decode(out.stderr));
  },
});
