// Pure helpers behind tools/trace_merge.ts: the trace records of a parent
// and its workers (ISOLA_TRACE=/abs/path writes one `<path>.<pid>.jsonl`
// per process, src/common/_trace.ts) merged into calls, and per pair of
// consecutive hops of a call its median, p90 and p99. No I/O here, so
// tests/tools/trace_merge_test.ts pins every step with fixed records.
import {
  summarizeHops,
  type TraceHopSummary,
  type TraceRecord,
} from "../src/common/_trace.ts";

/** Parses JSON lines of trace records; a bad line is a `SyntaxError` naming it. */
export function parseTraceLines(text: string, name: string): TraceRecord[] {
  const out: TraceRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === "") continue;
    const r = JSON.parse(lines[i]);
    if (
      typeof r?.time !== "number" || typeof r.hop !== "string" ||
      typeof r.key !== "number"
    ) {
      throw new SyntaxError(
        `Cannot read ${name} line ${i + 1}: not a trace record`,
      );
    }
    out.push({ time: r.time, hop: r.hop, key: r.key });
  }
  return out;
}

/**
 * Splits the records of all processes, in time order, into calls: each
 * begins at a `start` hop and takes every record up to the next one
 * (records before the first are dropped). Sync calls do not overlap, so
 * the hops of one call are consecutive in time whatever their keys.
 */
export function splitCalls(
  records: readonly TraceRecord[],
  start: string,
): TraceRecord[][] {
  const sorted = [...records].sort((a, b) => a.time - b.time);
  const calls: TraceRecord[][] = [];
  for (const r of sorted) {
    if (r.hop === start) calls.push([r]);
    else calls.at(-1)?.push(r);
  }
  return calls;
}

/**
 * Per pair of consecutive hops of the calls (in the order first seen),
 * then a row "total" (first hop to last of each call): µs.
 */
export function hopRows(calls: readonly TraceRecord[][]): TraceHopSummary[] {
  const spans = calls.filter((c) => c.length > 1).map((c) => [
    { ...c[0], hop: "total" },
    { ...c[c.length - 1], hop: "" },
  ]);
  return [...summarizeHops(calls), ...summarizeHops(spans)];
}

/** The rows as a markdown table. */
export function renderHopTable(rows: readonly TraceHopSummary[]): string {
  const lines = [
    "| from | to | calls | p50 µs | p90 µs | p99 µs |",
    "|---|---|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.from} | ${r.to} | ${r.count} | ${r.p50.toFixed(1)} | ${
        r.p90.toFixed(1)
      } | ${r.p99.toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}
