import {
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  IpcClosedError,
  IpcPeerGoneError,
  Process,
  type ProcessExit,
} from "../../mod.ts";
import { PipeLife } from "../../src/pipe/_pipe_life.ts";
import { procExists, within, withoutFdLeak } from "../_helpers.ts";

Deno.test("`PipeLife.markGone()` waits for the exit report, then fails with it; later checks carry it", async () => {
  await withoutFdLeak(async () => {
    const child = Process.spawn("/bin/sh", { args: ["-c", "exit 7"] });
    const life = new PipeLife(child);
    life.check("Cannot call 1"); // open: no throw
    const failed = Promise.withResolvers<ProcessExit | null>();
    life.markGone(failed.resolve);
    assertEquals(life.state, "gone");
    const exit = await within(failed.promise, 5000, "exit report");
    assertEquals(exit, { kind: "exited", code: 7 });
    const e = assertThrows(() => life.check("Cannot call 2"), IpcPeerGoneError);
    assertEquals(e.exit, exit);
    assertEquals(
      e.message,
      "Cannot call 2: the worker is gone (exited with code 7)",
    );
    assertEquals(life.goneLater("Cannot call 3"), null); // report known
    await life.end(1000);
    assertEquals(life.state, "closed");
    assertEquals(procExists(child.pid!), false);
  });
});

Deno.test("`PipeLife.goneLater()` fails a call made before the report was looked for, with the report", async () => {
  await withoutFdLeak(async () => {
    const child = Process.spawn("/bin/sh", { args: ["-c", "exit 5"] });
    const life = new PipeLife(child);
    life.markGone(() => {});
    const later = life.goneLater("Cannot call 1");
    if (later !== null) { // null if the report came already
      const e = await assertRejects(() => later, IpcPeerGoneError);
      assertEquals(e.exit, { kind: "exited", code: 5 });
    }
    await life.end(1000);
  });
});

Deno.test("`PipeLife.goneSync()` reaps a blocking caller's report synchronously", async () => {
  await withoutFdLeak(async () => {
    const child = Process.spawn("/bin/sh", { args: ["-c", "exit 4"] });
    const life = new PipeLife(child);
    const e = life.goneSync("Cannot call 9");
    assertInstanceOf(e, IpcPeerGoneError);
    assertEquals(e.exit, { kind: "exited", code: 4 });
    await life.end(1000);
  });
});

Deno.test("`PipeLife.end()` terminates a worker that does not exit on its own", async () => {
  await withoutFdLeak(async () => {
    const child = Process.spawn("/bin/sleep", { args: ["60"] });
    const life = new PipeLife(child);
    life.closing();
    assertThrows(() => life.check("Cannot call 1"), IpcClosedError, "closed");
    await within(life.end(10), 5000, "end");
    assertEquals(child.exitStatus?.kind, "signaled");
    assertEquals(procExists(child.pid!), false);
  });
});

Deno.test("`PipeLife` without a process: the report is null, markGone still fails once", async () => {
  const life = new PipeLife(null);
  let fails = 0;
  const done = Promise.withResolvers<ProcessExit | null>();
  life.markGone((exit) => {
    fails++;
    done.resolve(exit);
  });
  life.markGone(() => fails++);
  assertEquals(await within(done.promise, 5000, "fail"), null);
  assertEquals(fails, 1);
  assertEquals(life.goneSync("Cannot call 1").exit, null);
});
