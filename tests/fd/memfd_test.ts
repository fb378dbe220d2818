import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  createMemfd,
  fdSize,
  isSealed,
  readFd,
  sealFd,
  SyscallError,
  writeFd,
} from "../../mod.ts";
import { readlink } from "../../ffi/unistd.ts";
import { isCloexec, pattern, withoutFdLeak } from "../_helpers.ts";

Deno.test("createMemfd() writes, names and reads back content", async () => {
  await withoutFdLeak(() => {
    const data = pattern(100_000);
    using fd = createMemfd({ name: "frame0", data });
    assertEquals(fdSize(fd), 100_000);
    assertEquals(readFd(fd), data);
    assertEquals(readlink(`/proc/self/fd/${fd.fd}`), "/memfd:frame0 (deleted)");
    assert(isCloexec(fd.fd));
  });
});

Deno.test("writeFd() writes at an offset and grows the file", async () => {
  await withoutFdLeak(() => {
    using fd = createMemfd({ data: new Uint8Array([1, 2, 3]) });
    writeFd(fd, new Uint8Array([9, 9]), 2);
    assertEquals(readFd(fd), new Uint8Array([1, 2, 9, 9]));
  });
});

Deno.test("sealFd() makes a memfd immutable; writing then fails with EPERM", async () => {
  await withoutFdLeak(() => {
    using fd = createMemfd({ data: new Uint8Array([1]) });
    assert(!isSealed(fd));
    sealFd(fd);
    assert(isSealed(fd));
    const e = assertThrows(
      () => writeFd(fd, new Uint8Array([2])),
      SyscallError,
    );
    assertEquals(e.code, "EPERM");
    assertEquals(readFd(fd), new Uint8Array([1]));
  });
});

Deno.test("readFd() on a closed descriptor is a TypeError", () => {
  const fd = createMemfd();
  fd.close();
  assertThrows(() => readFd(fd), TypeError);
});
