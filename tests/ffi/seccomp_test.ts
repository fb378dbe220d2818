import { assertEquals, assertThrows } from "@std/assert";
import {
  assembleBpf,
  AUDIT_ARCH_X86_64,
  IOCTL_DENIED,
  seccomp_data,
  SECCOMP_RET,
  SYS_DENIED_X86_64,
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

Deno.test("the jail's seccomp filter checks the arch first, and each denied call jumps to EPERM", () => {
  const program = jailFilterProgram();
  const code = jailFilter();
  const count = program.filter((i) => i.op !== "label").length;
  assertEquals(code.length, count * 8);
  // arch check, nr load, x32, clone3, clone, ioctl, the deny-list, allow,
  // clone (3), ioctl (4), eperm, enosys, kill.
  assertEquals(count, 7 + DENIED_SYSCALLS.length + 1 + 3 + 4 + 3);
  assertEquals(hex(code.subarray(0, 8)), "2000000004000000");
  const v = new DataView(code.buffer, code.byteOffset);
  const ret = (i: number) => v.getUint32(i * 8 + 4, true);
  assertEquals(ret(count - 3), SECCOMP_RET.ERRNO | 1); // EPERM
  assertEquals(ret(count - 2), SECCOMP_RET.ERRNO | 38); // ENOSYS
  assertEquals(ret(count - 1), SECCOMP_RET.KILL_PROCESS);
  for (let i = 7; i < 7 + DENIED_SYSCALLS.length; i++) {
    const nr = v.getUint32(i * 8 + 4, true);
    const jt = v.getUint8(i * 8 + 2);
    assertEquals(nr, SYS_DENIED_X86_64[DENIED_SYSCALLS[i - 7]]);
    assertEquals(i + 1 + jt, count - 3, `${DENIED_SYSCALLS[i - 7]} → EPERM`);
  }
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
