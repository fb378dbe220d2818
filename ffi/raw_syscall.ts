/**
 * Raw system calls that return `-errno` instead of setting errno, for the
 * socket calls on hot paths (x86_64; elsewhere `rawSyscalls()` is null and
 * callers use libc and errno).
 *
 * Why: errno is read through a second FFI call after the first returns.
 * Measured here, a worker spinning on `recvmsg(MSG_DONTWAIT)` right after
 * start-up occasionally read `ENOENT` instead of `EAGAIN`: something on the
 * thread (the runtime, between the two calls) had set errno meanwhile. The
 * kernel's own return value cannot be clobbered.
 *
 * The code is the 19 bytes of `raw_syscall_x86_64.S`, placed in an
 * anonymous page that is then made read + execute (never writable and
 * executable at once).
 *
 * @module
 */
import { mapCode } from "./spawn.ts";

/** The machine code of `ffi/raw_syscall_x86_64.S`. */
export const RAW_SYSCALL_X86_64_CODE: Uint8Array = Uint8Array.from([
  0x89,
  0xf8, // movl %edi, %eax
  0x48,
  0x63,
  0xfe, // movslq %esi, %rdi
  0x48,
  0x89,
  0xd6, // mov %rdx, %rsi
  0x89,
  0xca, // movl %ecx, %edx
  0x4d,
  0x89,
  0xc2, // mov %r8, %r10
  0x4d,
  0x89,
  0xc8, // mov %r9, %r8
  0x0f,
  0x05, // syscall
  0xc3, // ret
]);

/** x86_64 system call numbers (asm/unistd_64.h). */
export const SYS_X86_64 = Object.freeze({
  sendmsg: 46,
  recvmsg: 47,
});

const fnDefinition = {
  // long raw_syscall(int nr, int fd, struct msghdr *msg, unsigned flags)
  parameters: ["i32", "i32", "buffer", "u32"],
  result: "i64",
} as const;

/** The raw socket calls: each returns bytes, or -errno. */
export interface RawSocketCalls {
  /** sendmsg(2): bytes sent or -errno. */
  sendmsg(fd: number, msghdr: Uint8Array, flags: number): number;
  /** recvmsg(2): bytes received or -errno. */
  recvmsg(fd: number, msghdr: Uint8Array, flags: number): number;
}

let calls: RawSocketCalls | null | undefined;

/**
 * The raw socket calls, or null where there is no stub (not x86_64, or the
 * page cannot be made executable). Made once per JavaScript realm.
 */
export function rawSocketCalls(): RawSocketCalls | null {
  if (calls !== undefined) return calls;
  calls = null;
  if (Deno.build.arch !== "x86_64" || Deno.build.os !== "linux") return null;
  const page = mapCode(RAW_SYSCALL_X86_64_CODE);
  if (typeof page === "number") return null;
  const fn = new Deno.UnsafeFnPointer(
    page as Deno.PointerObject<typeof fnDefinition>,
    fnDefinition,
  );
  calls = {
    sendmsg: (fd, hdr, flags) =>
      Number(fn.call(SYS_X86_64.sendmsg, fd, hdr, flags)),
    recvmsg: (fd, hdr, flags) =>
      Number(fn.call(SYS_X86_64.recvmsg, fd, hdr, flags)),
  };
  return calls;
}
