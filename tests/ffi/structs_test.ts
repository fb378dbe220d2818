import { assertEquals } from "@std/assert";
import {
  clone_args,
  CMSG_ALIGN,
  CMSG_DATA_OFFSET,
  CMSG_LEN,
  CMSG_SPACE,
  cmsghdr,
  epoll_event,
  iovec,
  msghdr,
  pollfd,
  siginfo_t,
} from "../../ffi/structs.ts";
import { MSG, SOCK } from "../../ffi/socket.ts";
import { F, MFD } from "../../ffi/unistd.ts";
import { POLL } from "../../ffi/poll.ts";
import { EPOLL } from "../../ffi/epoll.ts";

// Every table and constant, checked by the C compiler: each value becomes a
// _Static_assert, so `gcc -fsyntax-only` accepts the program only if ffi/
// agrees with the system headers. Nothing is run.
const tables: Record<string, Record<string, number>> = {
  iovec,
  msghdr,
  cmsghdr,
  pollfd,
  siginfo_t,
  clone_args,
  epoll_event,
};

const structName: Record<string, string> = {
  iovec: "struct iovec",
  msghdr: "struct msghdr",
  cmsghdr: "struct cmsghdr",
  pollfd: "struct pollfd",
  siginfo_t: "siginfo_t",
  clone_args: "struct clone_args",
  epoll_event: "struct epoll_event",
};

const constants: Record<string, number> = {
  ...SOCK,
  ...MSG,
  ...POLL,
  ...F,
  ...MFD,
  ...EPOLL,
};

function cProgram(): string {
  const checks: string[] = [];
  const check = (expr: string, value: number, what: string) =>
    checks.push(`_Static_assert((${expr}) == ${value}, "${what}");`);
  for (const [table, fields] of Object.entries(tables)) {
    for (const [field, v] of Object.entries(fields)) {
      const expr = field === "SIZEOF"
        ? `sizeof(${structName[table]})`
        : `offsetof(${structName[table]}, ${field})`;
      check(expr, v, `${table}.${field}`);
    }
  }
  for (const [name, v] of Object.entries(constants)) check(name, v, name);
  for (const n of [0, 1, 4, 12, 1012]) {
    check(`CMSG_SPACE(${n})`, CMSG_SPACE(n), `CMSG_SPACE(${n})`);
    check(`CMSG_LEN(${n})`, CMSG_LEN(n), `CMSG_LEN(${n})`);
  }
  // CMSG_DATA(c) is ((unsigned char *)(c) + CMSG_ALIGN(sizeof(struct cmsghdr)))
  check(
    "CMSG_ALIGN(sizeof(struct cmsghdr))",
    CMSG_DATA_OFFSET,
    "CMSG_DATA offset",
  );
  return `#define _GNU_SOURCE
#include <stddef.h>
#include <poll.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/epoll.h>
#include <linux/sched.h>
${checks.join("\n")}
`;
}

const hasCc = (() => {
  try {
    return new Deno.Command("gcc", { args: ["--version"], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "ffi struct tables and constants match the C headers",
  ignore: !hasCc,
  async fn() {
    const child = new Deno.Command("gcc", {
      args: ["-fsyntax-only", "-Wall", "-x", "c", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(cProgram()));
    await w.close();
    const out = await child.output();
    const errors = new TextDecoder().decode(out.stderr);
    assertEquals(out.success, true, errors);
    assertEquals(errors, "");
  },
});

Deno.test("ffi CMSG helpers follow the 8-byte alignment of LP64", () => {
  assertEquals(CMSG_ALIGN(0), 0);
  assertEquals(CMSG_ALIGN(1), 8);
  assertEquals(CMSG_ALIGN(8), 8);
  assertEquals(CMSG_SPACE(4 * 253), 16 + 1016);
  assertEquals(CMSG_LEN(4 * 3), 28);
});
