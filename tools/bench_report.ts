// Runs every bench/*_bench.ts once and writes docs/performance.md plus SVG
// charts in docs/img/.
//
//   deno task bench:report
//       runs `deno bench --json` (a few minutes), then writes the report
//   deno run --allow-read --allow-write=docs tools/bench_report.ts --input run.json
//       writes the report from a saved `deno bench --json` output instead
//   --cadence run.json | --no-cadence
//       the cadence table from a saved `bench/cadence.ts --json` output, or
//       none; by default bench/cadence.ts runs with --quick (about a minute)
//   --machine "noisy 2-vCPU VM"
//       words for the machine in the report's caveat (default: "noisy
//       <N>-vCPU VM", N from navigator.hardwareConcurrency)
//
// Permissions: --allow-run to start `deno bench` (which gets the bench task's
// own flags, BENCH_FLAGS), --allow-write=docs for the output, and
// --allow-sys=osRelease,systemMemoryInfo for the kernel and memory lines
// (without it they read "unknown"). The CPU model comes from the bench JSON:
// Deno reads /proc/cpuinfo itself, while a script may not without -A.
import { parseArgs } from "@std/cli/parse-args";
import {
  BENCH_FLAGS,
  type BenchRun,
  CADENCE_FLAGS,
  type CadenceRun,
  type ChartLink,
  fdsPerSecondChart,
  formatDuration,
  formatRatio,
  groupRows,
  type MachineInfo,
  parseBenchJson,
  parseCadenceJson,
  renderBarChart,
  renderReport,
  roundTripChart,
  spawnChart,
  syncCallChart,
} from "./_bench_report_lib.ts";

const USAGE = `usage: bench_report [--input <deno-bench.json>] ` +
  `[--cadence <cadence.json> | --no-cadence] [--machine <words>]`;
const COMMAND = "deno task bench:report";

const args = parseArgs(Deno.args, {
  string: ["input", "machine", "cadence"],
  boolean: ["help", "no-cadence"],
});
if (args.help) {
  console.log(USAGE);
  Deno.exit(0);
}

const root = new URL("../", import.meta.url);
const docs = new URL("docs/", root);
const img = new URL("img/", docs);

/** Runs `deno bench --json` on bench/ and returns its stdout. */
async function runBenches(): Promise<{ json: string; success: boolean }> {
  const cmdArgs = ["bench", "--json", ...BENCH_FLAGS, "bench/"];
  console.error(
    `Running deno ${cmdArgs.join(" ")} (takes a few minutes)…`,
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: cmdArgs,
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return {
    json: new TextDecoder().decode(output.stdout),
    success: output.success,
  };
}

/** Runs bench/cadence.ts --quick and returns its JSON, or null on failure. */
async function runCadence(): Promise<string | null> {
  const cmdArgs = [
    "run",
    ...CADENCE_FLAGS,
    "bench/cadence.ts",
    "--quick",
    "--json-stdout",
  ];
  console.error(`Running deno ${cmdArgs.join(" ")} (about a minute)…`);
  const output = await new Deno.Command(Deno.execPath(), {
    args: cmdArgs,
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return output.success ? new TextDecoder().decode(output.stdout) : null;
}

/**
 * Formats markdown the way `deno fmt` does (through `deno fmt -`, with this
 * repository's config), so `deno fmt --check` passes on the generated file.
 */
async function formatMarkdown(markdown: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    cwd: root,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(markdown));
  await writer.close();
  const output = await child.output();
  if (!output.success) {
    throw new Error(
      `Cannot format docs/performance.md: deno fmt exited with ${output.code}`,
    );
  }
  return new TextDecoder().decode(output.stdout);
}

/** Calls `fn` if sys permission `kind` is granted (never prompts). */
function sys<T>(kind: "osRelease" | "systemMemoryInfo", fn: () => T) {
  const status = Deno.permissions.querySync({ name: "sys", kind });
  return status.state === "granted" ? fn() : undefined;
}

function machineInfo(run: BenchRun, date: Date): MachineInfo {
  const cpus = navigator.hardwareConcurrency;
  const { deno, v8, typescript } = Deno.version;
  return {
    cpu: run.cpu,
    cpus,
    memoryBytes: sys("systemMemoryInfo", () => Deno.systemMemoryInfo().total),
    kernel: sys("osRelease", () => Deno.osRelease()) ??
      "unknown (needs --allow-sys=osRelease)",
    os: `${Deno.build.os} ${Deno.build.arch}`,
    runtime: `Deno ${deno} (V8 ${v8}, TypeScript ${typescript}), ` +
      Deno.build.target,
    date: date.toISOString().replace(/\.\d+Z$/, "Z"),
    description: args.machine ?? `noisy ${cpus}-vCPU VM`,
  };
}

const started = new Date();
let json: string;
let benchesOk = true;
if (args.input !== undefined) {
  json = await Deno.readTextFile(args.input);
} else {
  const result = await runBenches();
  json = result.json;
  benchesOk = result.success;
}

let cadence: CadenceRun | undefined;
if (!args["no-cadence"]) {
  const text = args.cadence !== undefined
    ? await Deno.readTextFile(args.cadence)
    : await runCadence();
  if (text === null) {
    console.error("bench/cadence.ts failed: the report has no cadence table");
  } else {
    cadence = parseCadenceJson(text);
  }
}

let run: BenchRun;
try {
  run = parseBenchJson(json);
} catch (error) {
  console.error(
    `Cannot write the report: deno bench output is not usable (${error})`,
  );
  Deno.exit(1);
}
if (run.rows.length === 0) {
  console.error("Cannot write the report: no bench finished");
  Deno.exit(1);
}

const charts: (ChartLink & { svg: string })[] = [];
for (
  const [file, chart, note] of [
    [
      "bench_round_trip.svg",
      roundTripChart(run.rows),
      "Each round trip goes main thread → echoing Worker → main thread; " +
      "isola blocks in `receive()`, the baseline awaits a `message` event.",
    ],
    [
      "bench_fds_per_second.svg",
      fdsPerSecondChart(run.rows),
      "One iteration sends 100 messages one way, then one acknowledged " +
      "round trip; rates divide by the whole iteration.",
    ],
    [
      "bench_spawn.svg",
      spawnChart(run.rows),
      "Isolated = clone3 with new user and network namespaces.",
    ],
    [
      "bench_sync_call.svg",
      syncCallChart(run.rows),
      "isola's sendSync blocks the calling thread on a socket to an " +
      "isolated child process; the built-ins are awaited.",
    ],
  ] as const
) {
  if (chart === null) continue;
  charts.push({
    path: `img/${file}`,
    title: chart.title,
    note,
    svg: renderBarChart(chart),
  });
}

const markdown = await formatMarkdown(renderReport({
  run,
  machine: machineInfo(run, started),
  charts,
  cadence,
  command: COMMAND,
}));

await Deno.mkdir(img, { recursive: true });
for (const chart of charts) {
  await Deno.writeTextFile(new URL(chart.path, docs), chart.svg);
}
await Deno.writeTextFile(new URL("performance.md", docs), markdown);

console.error(
  `Wrote docs/performance.md and ${charts.length} charts in docs/img/ ` +
    `(${run.rows.length} benches, ${run.failures.length} failed).`,
);
for (const group of groupRows(run.rows)) {
  const baseline = group.rows.find((row) => row.baseline);
  for (const row of group.rows) {
    console.error(
      `  ${group.group ?? "(no group)"} · ${row.name}: ` +
        `${formatDuration(row.avg)} (${formatRatio(row, baseline)})`,
    );
  }
}
if (!benchesOk || run.failures.length > 0) Deno.exit(1);
