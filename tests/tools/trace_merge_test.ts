import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import {
  hopRows,
  parseTraceLines,
  renderHopTable,
  splitCalls,
} from "../../tools/_trace_merge_lib.ts";
import type { TraceRecord } from "../../src/common/_trace.ts";
import { Process } from "../../src/process/process.ts";
import { createMemfd, readFd } from "../../src/fd/memfd.ts";
import { within } from "../_helpers.ts";

// Two calls traced by a parent (keys -1 and cookies) and its worker (the
// cookies and -2), each process's records in its own order, ms.
const PARENT: TraceRecord[] = [
  { time: 100.000, hop: "ipa.call", key: -1 },
  { time: 100.010, hop: "call.send", key: 7 },
  { time: 100.100, hop: "call.reply", key: 7 },
  { time: 200.000, hop: "ipa.call", key: -1 },
  { time: 200.030, hop: "call.send", key: 8 },
  { time: 200.120, hop: "call.reply", key: 8 },
];
const WORKER: TraceRecord[] = [
  { time: 50.000, hop: "worker.received", key: 1 }, // warm-up: no call yet
  { time: 100.050, hop: "worker.received", key: 7 },
  { time: 100.060, hop: "worker.reply", key: 7 },
  { time: 200.080, hop: "worker.received", key: 8 },
  { time: 200.100, hop: "worker.reply", key: 8 },
];

Deno.test("`splitCalls()` merges the processes' records by time into calls from each start hop", () => {
  const calls = splitCalls([...WORKER, ...PARENT], "ipa.call");
  assertEquals(calls.length, 2);
  assertEquals(calls[0].map((r) => r.hop), [
    "ipa.call",
    "call.send",
    "worker.received",
    "worker.reply",
    "call.reply",
  ]);
  assertEquals(calls[1][2].time, 200.080);
});

Deno.test("`hopRows()` gives each pair of consecutive hops and the whole call its percentiles in µs", () => {
  const rows = hopRows(splitCalls([...PARENT, ...WORKER], "ipa.call"));
  const by = (from: string) => rows.find((r) => r.from === from)!;
  assertEquals(rows.map((r) => r.from), [
    "ipa.call",
    "call.send",
    "worker.received",
    "worker.reply",
    "total",
  ]);
  const send = by("ipa.call");
  assertEquals(send.count, 2);
  assertEquals([send.p50, send.p99].map(Math.round), [10, 30]);
  assertEquals(by("call.send").to, "worker.received");
  assertEquals([by("total").p50, by("total").p99].map(Math.round), [100, 120]);
});

Deno.test("`parseTraceLines()` reads JSON lines and names a line that is not a record", () => {
  const text = PARENT.map((r) => JSON.stringify(r)).join("\n") + "\n";
  assertEquals(parseTraceLines(text, "p.jsonl"), PARENT);
  assertThrows(
    () => parseTraceLines(`${text}{"time":"x"}\n`, "p.jsonl"),
    SyntaxError,
    "p.jsonl line 7",
  );
});

Deno.test("tools/trace_merge.ts prints the table of a parent's and a worker's files", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "isola-trace-" });
  try {
    for (const [pid, records] of [[11, PARENT], [12, WORKER]] as const) {
      Deno.writeTextFileSync(
        `${dir}/t.${pid}.jsonl`,
        records.map((r) => JSON.stringify(r)).join("\n") + "\n",
      );
    }
    const tool = new URL("../../tools/trace_merge.ts", import.meta.url);
    // Through isola's spawn: the test task allows running only gcc and as.
    const run = async (...args: string[]) => {
      using stdout = createMemfd();
      const p = Process.spawn(Deno.execPath(), {
        args: ["run", "--allow-read", tool.pathname, ...args],
        env: { NO_COLOR: "1" },
        stdout,
        stderr: "capture",
      });
      const exit = await within(p.exited, 20_000, "trace_merge exit");
      const text = (b?: Uint8Array) => new TextDecoder().decode(b);
      return {
        code: exit.kind === "exited" ? exit.code : -1,
        stdout: text(readFd(stdout)),
        stderr: text(exit.stderr),
      };
    };
    const out = await run(`${dir}/t`, "--last", "1");
    assertEquals(out.code, 0, out.stderr);
    const table = out.stdout.trim();
    const last = splitCalls([...PARENT, ...WORKER], "ipa.call").slice(-1);
    assertEquals(table, renderHopTable(hopRows(last)));
    assertStringIncludes(table, "| call.send | worker.received | 1 | 50.0 |");
    const none = await run(`${dir}/absent`);
    assertEquals(none.code, 1);
    assertStringIncludes(
      none.stderr,
      "Cannot merge traces: no",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
