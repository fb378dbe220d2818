import {
  assert,
  assertEquals,
  assertGreater,
  assertStringIncludes,
} from "@std/assert";
import { IpaModuleError, ProcessIsolationError } from "../../mod.ts";
import {
  isolationAdvice,
  isolationRefusal,
  runDemo,
  summaryTable,
} from "../../examples/demo/main.ts";
import { test, USERNS, warmUpWorkers, withoutFdLeak } from "../_helpers.ts";

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

Deno.test("demo: a refused isolation is explained with its cause and --placement thread", async () => {
  // Where the kernel refuses user namespaces the demo meets the real
  // refusal; elsewhere the error it would get, wrapped as a module error.
  const err: unknown = USERNS
    ? new IpaModuleError("vendor_ae_awb.ts", "could not be started", {
      cause: new ProcessIsolationError(
        ["userNamespace"],
        "refused by the kernel",
      ),
    })
    : await runDemo({
      cameras: 1,
      seconds: 0.1,
      placement: "isolated",
      crashOne: false,
      fps: 30,
      status: null,
    }).then(() => null, (e) => e);
  const refusal = isolationRefusal(err);
  assert(refusal !== null, `not an isolation refusal: ${err}`);
  const advice = isolationAdvice(refusal!);
  assertStringIncludes(advice, "deno task demo --placement thread");
  assertStringIncludes(advice, "ProcessIsolationError: Cannot spawn isolated");
  assertEquals(isolationRefusal(new Error("other")), null);
});
