import { assert, assertEquals, assertThrows } from "@std/assert";
import { createMemfd, OwnedFd, SyscallError } from "../../mod.ts";
import { isCloexec, isOpen, withoutFdLeak } from "../_helpers.ts";

Deno.test("OwnedFd.close() closes once; later closes do nothing", async () => {
  await withoutFdLeak(() => {
    const fd = createMemfd();
    const n = fd.fd;
    assert(isOpen(n));
    fd.close();
    assert(!isOpen(n));
    fd.close();
    assert(!fd.isValid);
    assertThrows(() => fd.fd, TypeError, "already closed");
  });
});

Deno.test("OwnedFd.release() hands the number on without closing", async () => {
  await withoutFdLeak(() => {
    const fd = createMemfd();
    const n = fd.release();
    assert(isOpen(n));
    fd.close(); // no effect: released
    assert(isOpen(n));
    assertThrows(() => fd.release(), TypeError);
    new OwnedFd(n).close();
    assert(!isOpen(n));
  });
});

Deno.test("OwnedFd closes on `using` scope exit", async () => {
  await withoutFdLeak(() => {
    let n: number;
    {
      using fd = createMemfd();
      n = fd.fd;
      assert(isOpen(n));
    }
    assert(!isOpen(n));
  });
});

Deno.test("OwnedFd.dup() makes an independent close-on-exec owner", async () => {
  await withoutFdLeak(() => {
    using a = createMemfd();
    using b = a.dup();
    assert(a.fd !== b.fd);
    assert(isCloexec(b.fd));
    a.close();
    assert(isOpen(b.fd));
  });
});

Deno.test("OwnedFd refuses invalid numbers and reports EBADF on a stolen close", async () => {
  await withoutFdLeak(() => {
    assertThrows(() => new OwnedFd(-1), RangeError);
    assertThrows(() => new OwnedFd(1.5), RangeError);
    const a = createMemfd();
    const n = a.fd;
    new OwnedFd(n).close(); // somebody else closed our descriptor
    const e = assertThrows(() => a.close(), SyscallError);
    assertEquals(e.code, "EBADF");
    assertEquals(e.syscall, "close");
  });
});
