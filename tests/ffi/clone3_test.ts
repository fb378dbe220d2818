import { fromFileUrl } from "@std/path";
import { assertEquals } from "@std/assert";
import {
  ChildOps,
  CLONE3_X86_64_CODE,
  clone3Available,
  clone3Spawn,
  isola_op,
  isola_spawn,
  OP_FLAG,
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
  assertEquals(isola_op.SIZEOF, 64);
  assertEquals([isola_op.a4, isola_op.expect, isola_op.flags], [40, 48, 56]);
  // The .S advances the op cursor by 64 (`add r12, 64` = 49 83 c4 40)
  // and tests the flags byte at 56 (`test byte ptr [r12 + 56]` = 41 f6 44 24 38).
  const code = [...CLONE3_X86_64_CODE].map((b) =>
    b.toString(16).padStart(2, "0")
  ).join("");
  assertEquals(code.includes("4983c440"), true);
  assertEquals(code.includes("41f6442438"), true);
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

Deno.test({
  name:
    "`ChildOps` passes a saved result on as the first argument, and tolerates a failure marked MAY_FAIL",
  ignore: !clone3Available(),
  fn: async () => {
    await withoutFdLeak(() => {
      // A failing op marked MAY_FAIL does not stop the child; exit_group
      // then gets the saved result of getppid() (the parent's pid, mod 256)
      // as its status.
      const ops = new ChildOps()
        .add("chdir", 80, [0], 0, OP_FLAG.MAY_FAIL)
        .add("getppid", 110, [], 0, OP_FLAG.SAVE)
        .add("exit_group", 231, [0], 0, OP_FLAG.A0_SAVED);
      const r = spawnRaw(ops);
      assertEquals(r.kind, "ok");
      if (r.kind !== "ok") return;
      assertEquals(reap(r.pidfd), {
        pid: r.pid,
        code: 1,
        status: Deno.pid & 0xff,
      });
      // Without MAY_FAIL the same failure is reported with its step.
      const r2 = spawnRaw(new ChildOps().add("chdir", 80, [0]));
      assertEquals(
        r2.kind === "child-failed" && [r2.errno, r2.step],
        [14, "chdir"], // EFAULT: NULL path
      );
      if (r2.kind === "child-failed") reap(r2.pidfd);
    });
  },
});
