import { assertEquals, assertMatch } from "@std/assert";
import { errnoName, SyscallError } from "../../ffi/errno.ts";
import { close } from "../../ffi/unistd.ts";

Deno.test("errno is read right after the failing call", () => {
  assertEquals(close(987_654), -9); // EBADF
});

Deno.test("SyscallError names errno, call and action", () => {
  const e = new SyscallError(11, "sendmsg", "Cannot send message");
  assertEquals(e.code, "EAGAIN");
  assertEquals(e.errno, 11);
  assertEquals(e.syscall, "sendmsg");
  assertEquals(e.name, "SyscallError");
  assertMatch(
    e.message,
    /^Cannot send message: sendmsg failed with EAGAIN \(.+\)$/,
  );
  assertEquals(errnoName(9999), "E9999");
});
