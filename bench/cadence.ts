// Sync calls at frame cadence: the figure a camera user sees. A camera
// makes one sync call per frame, 33 ms apart, and between two calls the
// process sleeps; after such an idle gap every page a call touches costs a
// page walk, so a path that touches little wins (docs/performance.md).
//
// One interleaved run: for each round, each regime, each contender in
// turn, so the machine's noise falls on all of them alike. Contenders:
//   C pair          two processes, blocking recv(2) (gcc, built now)
//   Deno FFI pair   a Deno echo child, the parent's send/recv by FFI
//   serveBlocking   isola sendSync -> IpcPipeWorker.serveBlocking()
//   serve()         isola sendSync -> IpcPipeWorker.serve() (event loop)
//   IPA isolated    isola IpaProxyIsolated, a sync method, 64 B each way
//                   (it keeps its calls warm: option keepWarm, default on)
//   serveBlocking, keepWarm   the same as serveBlocking, the pipe's
//                   keepWarm on (off by default for a raw pipe)
// Regimes: back to back, 30 fps, 4 pipes x 30 fps (a call every 8.3 ms
// rotating over 4 pipes), then the same with a CPU hog on every core,
// spinning on (the default, adaptive) and off.
//
//   deno task bench:cadence [--quick] [--json PATH | --json-stdout]
//
// `deno bench` cannot pace calls 33 ms apart, hence a script
// (bench/cadence_bench.ts is the back-to-back part as a `deno bench`). It
// prints a table (p50 and p99 in µs, the range of the per-round medians,
// and ratios to the Deno FFI pair) and, with --json, writes the samples'
// summary (to stdout with `--json-stdout`, the table then on stderr) for
// tools/bench_report.ts.
import { parseArgs } from "@std/cli/parse-args";
import type { CadenceRow } from "../tools/_bench_report_lib.ts";
import {
  compile,
  type Contender,
  cPair,
  ffiPair,
  ipaPair,
  pipePair,
  type Regime,
} from "./_cadence_contenders.ts";

const args = parseArgs(Deno.args, {
  boolean: ["quick", "json-stdout"],
  string: ["json"],
});
const QUICK = args.quick;
/** Rounds of every regime and contender. */
const ROUNDS = QUICK ? 2 : 4;
/** Frame period of one camera: 30 fps. */
const FRAME_US = 33_333;
/** Pipes of the "4 cameras" regime. */
const MULTI_PIPES = 4;
const REGIMES: readonly Regime[] = [
  { name: "back to back", pipes: 1, periodUs: 0, calls: QUICK ? 500 : 2000 },
  { name: "30 fps", pipes: 1, periodUs: FRAME_US, calls: QUICK ? 30 : 60 },
  {
    name: "4 x 30 fps",
    pipes: MULTI_PIPES,
    periodUs: FRAME_US,
    calls: QUICK ? 120 : 240,
  },
];
/** Nearest-rank percentile. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

/** One result row; the report (tools/bench_report.ts) reads the same shape. */
type Row = CadenceRow;

async function measure(
  section: string,
  contenders: Contender[],
  regimes: readonly Regime[],
): Promise<Row[]> {
  const samples = new Map<string, number[][]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const regime of regimes) {
      for (const c of contenders) {
        const key = `${regime.name}\0${c.name}`;
        const s = await c.run(regime);
        const list = samples.get(key) ?? [];
        list.push(s);
        samples.set(key, list);
      }
    }
  }
  const rows: Row[] = [];
  for (const regime of regimes) {
    for (const c of contenders) {
      const rounds = samples.get(`${regime.name}\0${c.name}`)!;
      const all = rounds.flat().sort((a, b) => a - b);
      const medians = rounds.map((r) =>
        percentile([...r].sort((a, b) => a - b), 50)
      );
      rows.push({
        section,
        regime: regime.name,
        contender: c.name,
        samples: all.length,
        p50: percentile(all, 50),
        p99: percentile(all, 99),
        roundP50Min: Math.min(...medians),
        roundP50Max: Math.max(...medians),
      });
    }
  }
  return rows;
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function printTable(
  rows: Row[],
  baseline: string,
  print: (line: string) => void,
): void {
  print(
    "| section | regime | contender | p50 µs (round range) | p99 µs | p50 / FFI pair | p99 / FFI pair |",
  );
  print("|---|---|---|---:|---:|---:|---:|");
  for (const r of rows) {
    const base = rows.find((b) =>
      b.section === r.section && b.regime === r.regime &&
      b.contender === baseline
    );
    const ratio = (a: number, b?: number) =>
      b === undefined ? "" : (a / b).toFixed(2);
    print(
      `| ${r.section} | ${r.regime} | ${r.contender} | ${fmt(r.p50)} (${
        fmt(r.roundP50Min)
      }–${fmt(r.roundP50Max)}) | ${fmt(r.p99)} | ${ratio(r.p50, base?.p50)} | ${
        ratio(r.p99, base?.p99)
      } |`,
    );
  }
}

const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola-cadence-" });
const cBinary = await compile("_cadence_pair.c", `${dir}/cadence_pair`);
const hogBinary = await compile("_cadence_hog.c", `${dir}/cadence_hog`);

const contenders: Contender[] = [
  cPair(cBinary),
  ffiPair(MULTI_PIPES),
  pipePair("serveBlocking", MULTI_PIPES, "blocking"),
  pipePair("serve()", MULTI_PIPES, "serve"),
  await ipaPair(MULTI_PIPES),
  // The raw pipe warms its calls only when asked (its peer must answer).
  pipePair("serveBlocking, keepWarm", MULTI_PIPES, "blocking", undefined, true),
];
const rows = await measure("idle", contenders, REGIMES);

// Under load: a hog on every core, spinning on (adaptive) vs off.
const loadContenders: Contender[] = [
  cPair(cBinary),
  contenders[1],
  pipePair("serveBlocking, spin off", 1, "blocking", 0),
  contenders[2],
  contenders[4],
];
const hogs = Array.from(
  { length: navigator.hardwareConcurrency },
  () => new Deno.Command(hogBinary, { stdout: "null" }).spawn(),
);
let loadRows: Row[];
try {
  loadRows = await measure(
    "under load",
    loadContenders,
    REGIMES.slice(0, 2),
  );
} finally {
  for (const h of hogs) {
    h.kill("SIGKILL");
    await h.status;
  }
}
await loadContenders[2].close();
for (const c of contenders) await c.close();
await Deno.remove(dir, { recursive: true });

const all = [...rows, ...loadRows];
const result = {
  date: new Date().toISOString(),
  quick: QUICK,
  rounds: ROUNDS,
  rows: all,
};
if (args["json-stdout"]) {
  // The JSON on stdout (for tools/bench_report.ts), the table on stderr.
  printTable(all, "Deno FFI pair", console.error);
  console.log(JSON.stringify(result));
} else {
  printTable(all, "Deno FFI pair", console.log);
  if (args.json) {
    await Deno.writeTextFile(args.json, JSON.stringify(result, null, 2));
  }
}
