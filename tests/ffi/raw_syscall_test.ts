import { fromFileUrl } from "@std/path";
import { assert, assertEquals } from "@std/assert";
import {
  RAW_SYSCALL_X86_64_CODE,
  rawSocketCalls,
} from "../../ffi/raw_syscall.ts";
import { MSG, MsgBuffers, SOCK, socketpair } from "../../ffi/socket.ts";
import { close } from "../../ffi/unistd.ts";
import { assembleText, HAS_BINUTILS } from "../_helpers.ts";

Deno.test({
  name:
    "`RAW_SYSCALL_X86_64_CODE` matches ffi/raw_syscall_x86_64.S when re-assembled with as",
  ignore: !HAS_BINUTILS || Deno.build.arch !== "x86_64",
  fn: async () => {
    const src = fromFileUrl(
      new URL("../../ffi/raw_syscall_x86_64.S", import.meta.url),
    );
    assertEquals(await assembleText(src), RAW_SYSCALL_X86_64_CODE);
  },
});

Deno.test({
  name:
    "`rawSocketCalls()` returns the kernel's result and -errno, never errno",
  ignore: Deno.build.arch !== "x86_64",
  fn() {
    const raw = rawSocketCalls();
    assert(raw !== null);
    const sv = socketpair(
      SOCK.AF_UNIX,
      SOCK.SOCK_SEQPACKET | SOCK.SOCK_CLOEXEC,
    );
    if (typeof sv === "number") throw new Error(`socketpair: ${sv}`);
    try {
      const rx = new MsgBuffers(64, 1);
      // Empty socket: EAGAIN (11), straight from the kernel.
      assertEquals(rx.recvmsg(sv[0], MSG.MSG_DONTWAIT), -11);
      const tx = new MsgBuffers(64, 1);
      tx.data.set([1, 2, 3]);
      assertEquals(tx.sendmsg(sv[1], 3, [], 0), 3);
      assertEquals(rx.recvmsg(sv[0], MSG.MSG_DONTWAIT), 3);
      assertEquals([...rx.data.subarray(0, 3)], [1, 2, 3]);
      // A closed descriptor: EBADF (9).
      assertEquals(rx.recvmsg(999_999, MSG.MSG_DONTWAIT), -9);
    } finally {
      close(sv[0]);
      close(sv[1]);
    }
  },
});
