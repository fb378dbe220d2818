import { assert, assertEquals } from "@std/assert";
import {
  summarizeTrace,
  TRACE_ON,
  traceRecords,
} from "../../src/common/_trace.ts";
import { Process } from "../../src/process/process.ts";
import { within } from "../_helpers.ts";

const FIXTURE = new URL("../fixtures/trace_worker.ts", import.meta.url)
  .pathname;

Deno.test("tracing is off without ISOLA_TRACE: the ring stays empty", () => {
  assertEquals(TRACE_ON, Deno.env.get("ISOLA_TRACE") !== undefined);
  if (!TRACE_ON) assertEquals(traceRecords(), []);
});

Deno.test("`summarizeTrace()` gives each pair of consecutive hops of a key its median and p99", () => {
  const s = summarizeTrace([
    { time: 1.000, hop: "a", key: 1 },
    { time: 1.010, hop: "a", key: 2 },
    { time: 1.002, hop: "b", key: 1 },
    { time: 1.014, hop: "b", key: 2 },
  ]);
  assertEquals(s.length, 1);
  assertEquals([s[0].from, s[0].to, s[0].count], ["a", "b", 2]);
  assert(Math.abs(s[0].p50 - 2) < 1e-6 || Math.abs(s[0].p50 - 4) < 1e-6);
  assert(Math.abs(s[0].p99 - 4) < 1e-6);
});

for (const [value, on] of [["1", true], ["", false]] as const) {
  Deno.test(`a program run with ISOLA_TRACE="${value}" ${on ? "summarises its hops on stderr at exit" : "records nothing"}`, async () => {
    const p = Process.spawn(Deno.execPath(), {
      args: ["run", "--allow-env", "--allow-ffi", FIXTURE],
      env: { ISOLA_TRACE: value, NO_COLOR: "1" },
      stdout: "null",
      stderr: "capture",
    });
    const exit = await within(p.exited, 20_000, "trace worker exit");
    assertEquals(exit.kind, "exited");
    const err = new TextDecoder().decode(exit.stderr ?? new Uint8Array());
    assertEquals(err.includes("test.start -> test.end: n=3"), on, err);
  });
}
