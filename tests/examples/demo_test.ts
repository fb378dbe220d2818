import { assert, assertEquals, assertGreater } from "@std/assert";
import { runDemo, summaryTable } from "../../examples/demo/main.ts";
import { test, warmUpWorkers, withoutFdLeak } from "../_helpers.ts";

test.userns("demo: cameras stream, one IPA crashes and is reported, all stop with no timeout and no process left", async () => {
  await warmUpWorkers(
    new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href,
  );
  await withoutFdLeak(async () => {
    const s = await runDemo({
      cameras: 3,
      seconds: 1.5,
      placement: "auto",
      crashOne: true,
      fps: 30,
      status: null,
    });
    assertEquals(s.timeouts, 0);
    assertEquals(s.processesLeft, 0);
    assertEquals(s.cameras.map((c) => c.placement), [
      "isolated",
      "isolated",
      "isolated",
    ]);
    assert(
      s.cameras[0].crashed?.includes("exited with code 70"),
      s.cameras[0].crashed ?? "",
    );
    for (const c of s.cameras.slice(1)) {
      assertEquals(c.crashed, null);
      assertGreater(
        c.frames,
        s.cameras[0].frames,
        "kept streaming after the crash",
      );
      assert(c.eventP50Us > 0 && c.syncP50Us > 0);
      assert(c.stopMs >= 0);
    }
    assert(summaryTable(s).includes("processes left 0"));
  });
});
