// Merges the trace files of a traced run (ISOLA_TRACE=/abs/path: one
// `<path>.<pid>.jsonl` per process, the parent's and each worker's) into
// calls and prints per pair of consecutive hops its median, p90 and p99
// (µs), as a markdown table. docs/cadence.md shows what it found.
//
//   deno task trace:merge PATH [--start ipa.call] [--last N]
//
// --start: the hop that begins a call (default ipa.call; call.send for a
// pipe without an IPA). --last: only the last N calls (e.g. the 30 fps
// phase after a back-to-back warm-up).
import { parseArgs } from "@std/cli/parse-args";
import { basename, dirname } from "@std/path";
import {
  hopRows,
  parseTraceLines,
  renderHopTable,
  splitCalls,
} from "./_trace_merge_lib.ts";
import type { TraceRecord } from "../src/common/_trace.ts";

const args = parseArgs(Deno.args, {
  string: ["start", "last"],
  default: { start: "ipa.call" },
});
const path = args._[0];
if (typeof path !== "string") {
  console.error("usage: trace_merge.ts PATH [--start HOP] [--last N]");
  Deno.exit(2);
}
const dir = dirname(path);
const prefix = `${basename(path)}.`;
const records: TraceRecord[] = [];
let files = 0;
for (const e of Deno.readDirSync(dir)) {
  if (!e.isFile || !e.name.startsWith(prefix) || !e.name.endsWith(".jsonl")) {
    continue;
  }
  const name = `${dir}/${e.name}`;
  records.push(...parseTraceLines(Deno.readTextFileSync(name), name));
  files++;
}
if (files === 0) {
  console.error(`Cannot merge traces: no ${path}.<pid>.jsonl in ${dir}`);
  Deno.exit(1);
}
let calls = splitCalls(records, args.start);
if (args.last !== undefined) calls = calls.slice(-Number(args.last));
if (calls.length === 0) {
  console.error(
    `Cannot merge traces: no hop "${args.start}" in ${files} files`,
  );
  Deno.exit(1);
}
console.log(renderHopTable(hopRows(calls)));
