import { assertEquals, assertInstanceOf, assertThrows } from "@std/assert";
import { createMemfd, IPC_ERROR_CMD, IpcMessage, OwnedFd } from "../../mod.ts";
import {
  encodeMessage,
  IPC_MESSAGE_HEADER_SIZE,
} from "../../src/pipe/ipc_message.ts";
import { isOpen, withoutFdLeak } from "../_helpers.ts";

Deno.test("IpcMessage refuses commands and cookies outside u32", () => {
  assertThrows(() => new IpcMessage({ cmd: 2 ** 32 }), RangeError);
  assertThrows(() => new IpcMessage({}, -1), RangeError);
  assertThrows(() => new IpcMessage({ cmd: 1.5 }), RangeError, "cmd");
  assertInstanceOf(new IpcMessage(), IpcMessage);
  assertEquals(new IpcMessage({ cmd: IPC_ERROR_CMD }).cmd, 0xffffffff);
});

Deno.test("`encodeMessage()` puts { u32 cmd, u32 cookie } little-endian before the data", () => {
  const p = encodeMessage(0x01020304, 0xa0b0c0d0, new Uint8Array([9, 8]), []);
  const data = p.data as Uint8Array;
  assertEquals(data.length, IPC_MESSAGE_HEADER_SIZE + 2);
  assertEquals(
    [...data],
    [4, 3, 2, 1, 0xd0, 0xc0, 0xb0, 0xa0, 9, 8],
  );
  assertEquals(p.fds, []);
});

Deno.test("IpcMessage disposal closes its owned descriptors only, not borrowed numbers or released ones", async () => {
  await withoutFdLeak(() => {
    using borrowed = createMemfd();
    const owned = createMemfd();
    const released = createMemfd();
    const msg = new IpcMessage({ fds: [borrowed.fd, owned, released] });
    assertEquals(msg.ownedFds.length, 2);
    const ownedNumber = owned.fd;
    const n = released.release();
    msg[Symbol.dispose]();
    assertEquals(isOpen(ownedNumber), false);
    assertEquals(isOpen(borrowed.fd), true);
    assertEquals(isOpen(n), true);
    new OwnedFd(n).close();
  });
});
