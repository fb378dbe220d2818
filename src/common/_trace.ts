// Per-hop timestamps of calls, for finding where a call's time goes.
//
// Off unless the environment variable ISOLA_TRACE is set when this module
// loads (read once). Off, every `if (TRACE_ON) trace(...)` site is a test of
// a constant that V8 folds away: no call, no allocation. On, each hop
// writes a timestamp (ms since the epoch, performance.timeOrigin +
// performance.now(), so records of the parent and its workers line up),
// a hop number and a key (the call's cookie) into a ring preallocated
// here; at exit the ring is summarised on stderr, per pair of consecutive
// hops of one key (median and p99 in µs), or written as JSON lines to
// `<ISOLA_TRACE>.<pid>.jsonl` when ISOLA_TRACE is an absolute path.
import { environStrings } from "../../ffi/spawn.ts";

/** Records kept (the oldest are overwritten). */
export const TRACE_CAPACITY = 1 << 16;

/** The variable that turns tracing on. */
export const TRACE_ENV = "ISOLA_TRACE";

function readSetting(): string {
  try {
    const env = Deno.permissions.querySync({
      name: "env",
      variable: TRACE_ENV,
    });
    if (env.state === "granted") return Deno.env.get(TRACE_ENV) ?? "";
    // FFI is full trust already; a worker may hold it and not --allow-env.
    if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
      const prefix = `${TRACE_ENV}=`;
      const hit = environStrings().find((s) => s.startsWith(prefix));
      return hit === undefined ? "" : hit.slice(prefix.length);
    }
  } catch {
    // No Deno namespace permissions API (e.g. a restricted realm): off.
  }
  return "";
}

const SETTING = readSetting();

/** Whether tracing is on in this realm (fixed at load). */
export const TRACE_ON: boolean = SETTING !== "" && SETTING !== "0";

/** One record of the ring. */
export interface TraceRecord {
  /** ms since the epoch. */
  time: number;
  hop: string;
  key: number;
}

class Ring {
  readonly times = new Float64Array(TRACE_CAPACITY);
  readonly hops = new Int32Array(TRACE_CAPACITY);
  readonly keys = new Float64Array(TRACE_CAPACITY);
  readonly names: string[] = [];
  readonly ids = new Map<string, number>();
  count = 0;

  add(hop: string, key: number): void {
    let id = this.ids.get(hop);
    if (id === undefined) {
      id = this.names.length;
      this.names.push(hop);
      this.ids.set(hop, id);
    }
    const i = this.count % TRACE_CAPACITY;
    this.times[i] = performance.timeOrigin + performance.now();
    this.hops[i] = id;
    this.keys[i] = key;
    this.count++;
  }

  records(): TraceRecord[] {
    const n = Math.min(this.count, TRACE_CAPACITY);
    const first = this.count - n;
    const out: TraceRecord[] = [];
    for (let j = 0; j < n; j++) {
      const i = (first + j) % TRACE_CAPACITY;
      out.push({
        time: this.times[i],
        hop: this.names[this.hops[i]],
        key: this.keys[i],
      });
    }
    return out;
  }
}

const ring = TRACE_ON ? new Ring() : null;

/**
 * Records hop `hop` of the call with key `key` (a cookie) now. Call it
 * behind `if (TRACE_ON)` so that it costs nothing when tracing is off.
 */
export function trace(hop: string, key: number): void {
  ring?.add(hop, key);
}

/** The records in the ring, oldest first (empty when tracing is off). */
export function traceRecords(): TraceRecord[] {
  return ring?.records() ?? [];
}

/** Per pair of consecutive hops: count, median, p90 and p99 in µs. */
export interface TraceHopSummary {
  from: string;
  to: string;
  count: number;
  p50: number;
  p90: number;
  p99: number;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  const i = Math.ceil(p / 100 * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, i))];
}

/**
 * Per pair of consecutive records within each group (in the order first
 * seen): how long from one hop to the next. Groups are the records of one
 * key (summarizeTrace) or of one call across processes
 * (tools/trace_merge.ts), each in time order.
 */
export function summarizeHops(
  groups: Iterable<readonly TraceRecord[]>,
): TraceHopSummary[] {
  const deltas = new Map<string, number[]>();
  for (const group of groups) {
    for (let i = 1; i < group.length; i++) {
      const pair = `${group[i - 1].hop}\0${group[i].hop}`;
      let list = deltas.get(pair);
      if (list === undefined) deltas.set(pair, list = []);
      list.push((group[i].time - group[i - 1].time) * 1000);
    }
  }
  return [...deltas].map(([pair, list]) => {
    list.sort((a, b) => a - b);
    const [from, to] = pair.split("\0");
    return {
      from,
      to,
      count: list.length,
      p50: percentile(list, 50),
      p90: percentile(list, 90),
      p99: percentile(list, 99),
    };
  });
}

/** Summarises `records` (default: the ring's) by pairs of hops of one key. */
export function summarizeTrace(
  records: readonly TraceRecord[] = traceRecords(),
): TraceHopSummary[] {
  const byKey = new Map<number, TraceRecord[]>();
  for (const r of records) {
    const list = byKey.get(r.key);
    if (list === undefined) byKey.set(r.key, [r]);
    else list.push(r);
  }
  return summarizeHops(byKey.values());
}

function dump(): void {
  if (ring === null || ring.count === 0) return;
  if (SETTING.startsWith("/")) {
    try {
      Deno.writeTextFileSync(
        `${SETTING}.${Deno.pid}.jsonl`,
        traceRecords().map((r) => JSON.stringify(r)).join("\n") + "\n",
      );
      return;
    } catch {
      // No write permission (an isolated worker): summarise on stderr.
    }
  }
  const lines = summarizeTrace().map((s) =>
    `  ${s.from} -> ${s.to}: n=${s.count} p50=${s.p50.toFixed(1)} µs p99=${
      s.p99.toFixed(1)
    } µs`
  );
  console.error(`isola trace (pid ${Deno.pid}):\n${lines.join("\n")}`);
}

if (TRACE_ON) globalThis.addEventListener("unload", dump);
