import { fromFileUrl } from "@std/path";
import { assertEquals } from "@std/assert";
import {
  ChildOps,
  CLONE3_X86_64_CODE,
  clone3Available,
  clone3Spawn,
  isola_op,
  isola_spawn,
} from "../../ffi/clone3_trampoline.ts";
import {
  cString,
  cStringArray,
  environPointer,
  W,
  waitidPidfd,
} from "../../ffi/spawn.ts";
import { close } from "../../ffi/unistd.ts";
import { assembleText, HAS_BINUTILS, withoutFdLeak } from "../_helpers.ts";

Deno.test({
  name:
    "`CLONE3_X86_64_CODE` matches ffi/clone3_x86_64.S when re-assembled with as",
  ignore: !HAS_BINUTILS,
  fn: async () => {
    const src = fromFileUrl(
      new URL("../../ffi/clone3_x86_64.S", import.meta.url),
    );
    assertEquals(await assembleText(src), CLONE3_X86_64_CODE);
  },
});

Deno.test("`isola_spawn` and `isola_op` have the sizes the assembly uses", () => {
  assertEquals(isola_spawn.SIZEOF, 64);
  assertEquals([isola_spawn.err, isola_spawn.step], [56, 60]);
  assertEquals(isola_op.SIZEOF, 48);
  // The .S advances the op cursor by 48 (`add r12, 48` = 49 83 c4 30).
  const code = [...CLONE3_X86_64_CODE].map((b) =>
    b.toString(16).padStart(2, "0")
  ).join("");
  assertEquals(code.includes("4983c430"), true);
});

function spawnRaw(ops: ChildOps, path = "/bin/true") {
  return clone3Spawn({
    flags: 0n,
    ops,
    path: cString(path),
    argv: cStringArray([path]).ptrs,
    envp: environPointer(),
  });
}

function reap(pidfd: number) {
  const w = waitidPidfd(pidfd, W.WEXITED | W.__WALL);
  close(pidfd);
  return w;
}

Deno.test({
  name:
    "`clone3Spawn()` reports the failing step and errno when a child op fails",
  ignore: !clone3Available(),
  fn: async () => {
    await withoutFdLeak(() => {
      const r = spawnRaw(new ChildOps().chdir(cString("/nonexistent")));
      assertEquals(r.kind, "child-failed");
      if (r.kind !== "child-failed") return;
      assertEquals([r.errno, r.step], [2, "chdir"]);
      assertEquals(reap(r.pidfd), { pid: r.pid, code: 1, status: 127 });

      // getppid() must match: a wrong parent pid is reported as ESRCH.
      const r2 = spawnRaw(new ChildOps().parentDeathSignal(9, 1));
      assertEquals(r2.kind, "child-failed");
      if (r2.kind !== "child-failed") return;
      assertEquals([r2.errno, r2.step], [3, "getppid"]);
      reap(r2.pidfd);

      const r3 = spawnRaw(new ChildOps().exit(5));
      assertEquals(r3.kind, "ok");
      if (r3.kind !== "ok") return;
      assertEquals(reap(r3.pidfd), { pid: r3.pid, code: 1, status: 5 });

      const r4 = spawnRaw(new ChildOps().resetSignals(), "/nonexistent");
      assertEquals(r4.kind === "child-failed" && [r4.errno, r4.step], [
        2,
        "execve",
      ]);
      if (r4.kind === "child-failed") reap(r4.pidfd);
    });
  },
});
