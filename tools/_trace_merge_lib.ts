// Pure helpers behind tools/trace_merge.ts: the trace records of a parent
// and its workers (ISOLA_TRACE=/abs/path writes one `<path>.<pid>.jsonl`
// per process, src/common/_trace.ts) merged into calls, and per pair of
// consecutive hops of a call its median, p90 and p99. No I/O here, so
// tests/tools/trace_merge_test.ts pins every step with fixed records.
import type { TraceRecord } from "../src/common/_trace.ts";

/** One pair of consecutive hops over all calls, in µs. */
export interface HopRow {
  from: string;
  to: string;
  count: number;
  p50: number;
  p90: number;
  p99: number;
}

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

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  const i = Math.ceil(p / 100 * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, i))];
}

/**
 * Per pair of consecutive hops of the calls (in the order first seen),
 * then a row "total" (first hop to last of each call): µs.
 */
export function hopRows(calls: readonly TraceRecord[][]): HopRow[] {
  const deltas = new Map<string, number[]>();
  const totals: number[] = [];
  for (const call of calls) {
    for (let i = 1; i < call.length; i++) {
      const pair = `${call[i - 1].hop}\0${call[i].hop}`;
      let list = deltas.get(pair);
      if (list === undefined) deltas.set(pair, list = []);
      list.push((call[i].time - call[i - 1].time) * 1000);
    }
    if (call.length > 1) {
      totals.push((call[call.length - 1].time - call[0].time) * 1000);
    }
  }
  const row = (from: string, to: string, list: number[]): HopRow => {
    list.sort((a, b) => a - b);
    return {
      from,
      to,
      count: list.length,
      p50: percentile(list, 50),
      p90: percentile(list, 90),
      p99: percentile(list, 99),
    };
  };
  const rows = [...deltas].map(([pair, list]) => {
    const [from, to] = pair.split("\0");
    return row(from, to, list);
  });
  if (totals.length > 0) rows.push(row("total", "", totals));
  return rows;
}

/** The rows as a markdown table. */
export function renderHopTable(rows: readonly HopRow[]): string {
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
