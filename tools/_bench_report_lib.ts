// Pure helpers behind tools/bench_report.ts: `deno bench --json` output to
// rows, rows to markdown tables, rows to hand-written SVG bar charts. No I/O
// here, so tests/tools/bench_report_test.ts can pin every step with a fixed sample.

/**
 * Permission flags of the `bench` task in deno.json, passed to
 * `deno bench --json` so the report measures what `deno task bench` measures.
 * tests/tools/bench_report_test.ts checks that the two agree.
 */
export const BENCH_FLAGS: readonly string[] = [
  "--allow-ffi",
  "--allow-read",
  "--allow-write=/tmp",
  "--allow-env",
  "--allow-run",
];

/** Permission flags of `deno task bench:cadence` (bench/cadence.ts). */
export const CADENCE_FLAGS: readonly string[] = BENCH_FLAGS;

/** One row of bench/cadence.ts's JSON: a contender in a regime, in µs. */
export interface CadenceRow {
  section: string;
  regime: string;
  contender: string;
  samples: number;
  p50: number;
  p99: number;
  roundP50Min: number;
  roundP50Max: number;
}

/** What bench/cadence.ts writes with `--json`. */
export interface CadenceRun {
  date: string;
  quick: boolean;
  rounds: number;
  rows: CadenceRow[];
}

/** The contender the cadence table divides by. */
export const CADENCE_BASELINE = "Deno FFI pair";

/**
 * Parses bench/cadence.ts's `--json` output.
 *
 * @throws {TypeError} If it is not that output.
 */
export function parseCadenceJson(text: string): CadenceRun {
  const v = JSON.parse(text) as CadenceRun;
  const num = (x: unknown) => typeof x === "number" && Number.isFinite(x);
  if (
    typeof v !== "object" || v === null || !Array.isArray(v.rows) ||
    !v.rows.every((r) =>
      typeof r?.section === "string" && typeof r.regime === "string" &&
      typeof r.contender === "string" && num(r.samples) && num(r.p50) &&
      num(r.p99) && num(r.roundP50Min) && num(r.roundP50Max)
    )
  ) {
    throw new TypeError(
      "Cannot read cadence results: not bench/cadence.ts JSON",
    );
  }
  return v;
}

function microseconds(us: number): string {
  return us >= 100 ? us.toFixed(0) : us.toFixed(1);
}

/**
 * The cadence table: one row per regime and contender, p50 (with the range
 * of the per-round medians) and p99 in µs, and both divided by the
 * {@linkcode CADENCE_BASELINE} of the same regime.
 */
export function renderCadenceTable(run: CadenceRun): string {
  const out = [
    "| regime | contender | p50 µs (range of round medians) | p99 µs | p50 / Deno FFI pair | p99 / Deno FFI pair |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
  ];
  for (const r of run.rows) {
    const base = run.rows.find((b) =>
      b.section === r.section && b.regime === r.regime &&
      b.contender === CADENCE_BASELINE
    );
    const ratio = (a: number, b?: number) =>
      b === undefined || b === 0 ? "" : (a / b).toFixed(2);
    const regime = r.section === "idle"
      ? r.regime
      : `${r.regime}, ${r.section}`;
    out.push(
      `| ${escapeMarkdown(regime)} | ${escapeMarkdown(r.contender)} | ${
        microseconds(r.p50)
      } (${microseconds(r.roundP50Min)}–${microseconds(r.roundP50Max)}) | ${
        microseconds(r.p99)
      } | ${ratio(r.p50, base?.p50)} | ${ratio(r.p99, base?.p99)} |`,
    );
  }
  return out.join("\n");
}

/** One finished bench from `deno bench --json`. Times are in nanoseconds. */
export interface BenchRow {
  /** The bench's `name`. */
  name: string;
  /** The bench's `group`, or `null` when it has none. */
  group: string | null;
  /** Whether the bench is its group's `baseline`. */
  baseline: boolean;
  /** The bench file, e.g. `unix_socket_bench.ts` (the URL's last segment). */
  file: string;
  /** Mean time per iteration (ns). */
  avg: number;
  /** Median (ns), when Deno reports one (2.x reports p75 and up only). */
  p50?: number;
  /** 75th percentile (ns). */
  p75: number;
  /** 99th percentile (ns). */
  p99: number;
  /** Fastest iteration (ns). */
  min: number;
  /** Slowest iteration (ns). */
  max: number;
  /** Number of measured iterations (`n`). */
  iterations: number;
}

/** A bench that threw instead of finishing. */
export interface BenchFailure {
  /** The bench's `name`. */
  name: string;
  /** The bench's `group`, or `null`. */
  group: string | null;
  /** The bench file (the URL's last segment). */
  file: string;
  /** The error message Deno recorded. */
  message: string;
}

/** One `deno bench --json` run, parsed. */
export interface BenchRun {
  /** E.g. `Deno/2.9.6 x86_64-unknown-linux-gnu`. */
  runtime: string;
  /** CPU model as Deno reports it, e.g. `Intel(R) Xeon(R) Processor`. */
  cpu: string;
  /** Finished benches, in the order Deno ran them. */
  rows: BenchRow[];
  /** Benches that threw. */
  failures: BenchFailure[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function num(record: Record<string, unknown>, key: string): number {
  const value = record[key];
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TypeError(
      `Cannot parse bench results: "${key}" is not a finite number`,
    );
  }
  return value;
}

function fileOf(origin: unknown): string {
  if (typeof origin !== "string") return "";
  return origin.slice(origin.lastIndexOf("/") + 1);
}

/**
 * Parses the output of `deno bench --json` (format `version: 1`).
 *
 * @param text The JSON text printed on stdout.
 * @returns The run, with one row per finished bench and one failure per bench
 *   that threw.
 * @throws {SyntaxError} If `text` is not JSON.
 * @throws {TypeError} If the JSON does not have the expected shape.
 *
 * @example Parse a one-bench run
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { parseBenchJson } from "./_bench_report_lib.ts";
 *
 * const run = parseBenchJson(JSON.stringify({
 *   version: 1,
 *   runtime: "Deno/2.9.6",
 *   cpu: "Example CPU",
 *   benches: [{
 *     origin: "file:///p/bench/a_bench.ts",
 *     group: null,
 *     name: "noop",
 *     baseline: false,
 *     results: [{
 *       ok: { n: 10, min: 1, max: 3, avg: 2, p75: 2, p99: 3 },
 *     }],
 *   }],
 * }));
 * assertEquals(run.rows[0].file, "a_bench.ts");
 * assertEquals(run.rows[0].iterations, 10);
 * ```
 */
export function parseBenchJson(text: string): BenchRun {
  const json: unknown = JSON.parse(text);
  if (!isRecord(json) || !Array.isArray(json.benches)) {
    throw new TypeError(
      'Cannot parse bench results: expected an object with a "benches" array',
    );
  }
  const run: BenchRun = {
    runtime: typeof json.runtime === "string" ? json.runtime : "unknown",
    cpu: typeof json.cpu === "string" ? json.cpu : "unknown",
    rows: [],
    failures: [],
  };
  for (const bench of json.benches) {
    if (!isRecord(bench) || typeof bench.name !== "string") {
      throw new TypeError("Cannot parse bench results: a bench has no name");
    }
    const group = typeof bench.group === "string" ? bench.group : null;
    const file = fileOf(bench.origin);
    const results = Array.isArray(bench.results) ? bench.results : [];
    for (const result of results) {
      if (!isRecord(result)) continue;
      if (isRecord(result.ok)) {
        const ok = result.ok;
        const row: BenchRow = {
          name: bench.name,
          group,
          baseline: bench.baseline === true,
          file,
          avg: num(ok, "avg"),
          p75: num(ok, "p75"),
          p99: num(ok, "p99"),
          min: num(ok, "min"),
          max: num(ok, "max"),
          iterations: num(ok, "n"),
        };
        if (typeof ok.p50 === "number") row.p50 = ok.p50;
        run.rows.push(row);
      } else if (isRecord(result.failed)) {
        const failed = result.failed;
        run.failures.push({
          name: bench.name,
          group,
          file,
          message: typeof failed.message === "string"
            ? failed.message
            : String(failed.exceptionMessage ?? "unknown error"),
        });
      }
    }
  }
  return run;
}

/** Rows of one group of one bench file, in run order. */
export interface BenchGroup {
  /** The bench file the group belongs to. */
  file: string;
  /** The group name, or `null` for a file's ungrouped benches. */
  group: string | null;
  /** The group's rows. */
  rows: BenchRow[];
}

/**
 * Splits rows into groups, keyed by bench file and group name, keeping the
 * order in which each group first appears.
 *
 * @param rows Rows from {@linkcode parseBenchJson}.
 * @returns One entry per (file, group) pair.
 */
export function groupRows(rows: readonly BenchRow[]): BenchGroup[] {
  const groups = new Map<string, BenchGroup>();
  for (const row of rows) {
    const key = JSON.stringify([row.file, row.group]);
    let entry = groups.get(key);
    if (entry === undefined) {
      entry = { file: row.file, group: row.group, rows: [] };
      groups.set(key, entry);
    }
    entry.rows.push(row);
  }
  return [...groups.values()];
}

/**
 * Formats a number with about three significant digits and `,` thousands
 * separators: `1234.5` → `"1,235"`, `12.34` → `"12.3"`, `1.234` → `"1.23"`.
 *
 * @param value The number.
 * @returns The formatted number.
 */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 || abs === 0 ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A time unit: its symbol and its size in nanoseconds. */
export interface TimeUnit {
  /** `ns`, `µs`, `ms` or `s`. */
  symbol: string;
  /** Nanoseconds per unit. */
  ns: number;
}

const TIME_UNITS: readonly TimeUnit[] = [
  { symbol: "ns", ns: 1 },
  { symbol: "µs", ns: 1e3 },
  { symbol: "ms", ns: 1e6 },
  { symbol: "s", ns: 1e9 },
];

/**
 * Picks the largest time unit in which `ns` is at least 1.
 *
 * @param ns A duration in nanoseconds.
 * @returns The unit to show it in.
 */
export function timeUnitFor(ns: number): TimeUnit {
  let unit = TIME_UNITS[0];
  for (const candidate of TIME_UNITS) {
    if (Math.abs(ns) >= candidate.ns) unit = candidate;
  }
  return unit;
}

/**
 * Formats a duration given in nanoseconds: `113573` → `"114 µs"`.
 *
 * @param ns A duration in nanoseconds.
 * @returns The duration with a unit.
 */
export function formatDuration(ns: number): string {
  const unit = timeUnitFor(ns);
  return `${formatNumber(ns / unit.ns)} ${unit.symbol}`;
}

/**
 * Describes how a row compares with its group's baseline, by mean time:
 * `"baseline"`, `"4.1× faster"`, `"2.0× slower"` or `"≈ same"` (within 5%).
 *
 * @param row The row to describe.
 * @param baseline The group's baseline row, if it has one.
 * @returns The ratio text, or `"—"` when there is no baseline.
 */
export function formatRatio(row: BenchRow, baseline?: BenchRow): string {
  if (baseline === undefined) return "—";
  if (row === baseline) return "baseline";
  const ratio = baseline.avg / row.avg;
  if (!Number.isFinite(ratio) || ratio <= 0) return "—";
  const factor = ratio >= 1 ? ratio : 1 / ratio;
  if (factor < 1.05) return "≈ same";
  const text = factor >= 10
    ? Math.round(factor).toLocaleString("en-US")
    : factor.toFixed(1);
  return `${text}× ${ratio >= 1 ? "faster" : "slower"}`;
}

/**
 * Escapes text for a markdown table cell or heading: `&`, `<`, `>` become
 * entities, `|` is backslash-escaped.
 *
 * @param text Any text.
 * @returns Text safe to put in a table cell.
 */
export function escapeMarkdown(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;").replaceAll("|", "\\|");
}

/**
 * Renders one group as a markdown table: bench, mean, p75, p99, iterations
 * and the ratio to the group's baseline (by mean). Shows a p50 column only if
 * some row has one.
 *
 * @param group A group from {@linkcode groupRows}.
 * @returns The table, without a heading, ending in a newline.
 */
export function renderGroupTable(group: BenchGroup): string {
  const baseline = group.rows.find((row) => row.baseline);
  const hasP50 = group.rows.some((row) => row.p50 !== undefined);
  const head = ["Bench", "avg", ...(hasP50 ? ["p50"] : []), "p75", "p99"];
  head.push("iterations", "vs baseline");
  const lines = [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => i === 0 ? "---" : "---:").join(" | ")} |`,
  ];
  for (const row of group.rows) {
    const cells = [
      escapeMarkdown(row.name) + (row.baseline ? " _(baseline)_" : ""),
      formatDuration(row.avg),
      ...(hasP50
        ? [row.p50 === undefined ? "—" : formatDuration(row.p50)]
        : []),
      formatDuration(row.p75),
      formatDuration(row.p99),
      row.iterations.toLocaleString("en-US"),
      formatRatio(row, baseline),
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n") + "\n";
}

/** The machine and run a report describes. */
export interface MachineInfo {
  /** CPU model. */
  cpu: string;
  /** Logical CPUs (`navigator.hardwareConcurrency`). */
  cpus: number;
  /** Total memory in bytes, if known. */
  memoryBytes?: number;
  /** Kernel release (`Deno.osRelease()`), or `"unknown"`. */
  kernel: string;
  /** E.g. `linux x86_64`. */
  os: string;
  /** E.g. `Deno 2.9.6 (V8 …, TypeScript …)`. */
  runtime: string;
  /** When the benches ran (ISO 8601). */
  date: string;
  /** Words for the machine in the caveat, e.g. `noisy 2-vCPU VM`. */
  description: string;
}

/** A chart file referenced by the report. */
export interface ChartLink {
  /** Path relative to the report, e.g. `img/bench_round_trip.svg`. */
  path: string;
  /** Alt text and caption. */
  title: string;
  /** One sentence under the chart saying how to read it. */
  note?: string;
}

/** Everything {@linkcode renderReport} puts in `docs/performance.md`. */
export interface ReportInput {
  /** The parsed run. */
  run: BenchRun;
  /** The machine it ran on. */
  machine: MachineInfo;
  /** Charts to embed, in order. */
  charts: readonly ChartLink[];
  /** The command that regenerates the report. */
  command: string;
  /** bench/cadence.ts's results, if it ran. */
  cadence?: CadenceRun;
}

/**
 * Renders the whole performance report as markdown: caveat, machine, how to
 * reproduce, charts, then one table per bench group, grouped by bench file.
 * Lines are not wrapped nor tables padded: pipe the result through
 * `deno fmt --ext=md -` for the repository's formatting.
 *
 * @param input Run, machine, charts and command.
 * @returns The markdown document, ending in a newline.
 */
export function renderReport(input: ReportInput): string {
  const { run, machine, charts, command } = input;
  const out: string[] = [];
  out.push("# Performance", "");
  out.push(
    `Generated by \`${command}\` on ${machine.date}; do not edit by hand.`,
    "",
  );
  out.push(
    `> **Read with care.** These figures are from one run on a ` +
      `${escapeMarkdown(machine.description)}, where the other tenants and ` +
      "the scheduler move absolute times by tens of percent from run to run. " +
      "Only ratios within one run (the “vs baseline” column) are comparable; " +
      "compare absolute times across runs or machines at your own risk.",
    "",
  );
  out.push("## Machine", "", "| | |", "| --- | --- |");
  out.push(`| CPU | ${escapeMarkdown(machine.cpu)} |`);
  out.push(`| Logical CPUs | ${machine.cpus} |`);
  out.push(
    `| Memory | ${
      machine.memoryBytes === undefined
        ? "unknown"
        : `${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB`
    } |`,
  );
  out.push(`| OS | ${escapeMarkdown(machine.os)} |`);
  out.push(`| Kernel | ${escapeMarkdown(machine.kernel)} |`);
  out.push(`| Runtime | ${escapeMarkdown(machine.runtime)} |`);
  out.push(`| Date | ${escapeMarkdown(machine.date)} |`, "");
  out.push("## How to reproduce", "");
  out.push(
    `Run \`${command}\` from the repository root. It runs every ` +
      "`bench/*_bench.ts` once (a few minutes) and rewrites this file and " +
      "the charts in `docs/img/`. `deno task bench` prints the same benches " +
      "to the console without writing anything.",
    "",
  );
  if (charts.length > 0) {
    out.push("## Charts", "");
    for (const chart of charts) {
      out.push(`### ${escapeMarkdown(chart.title)}`, "");
      out.push(`![${escapeMarkdown(chart.title)}](${chart.path})`, "");
      if (chart.note) out.push(chart.note, "");
    }
  }
  if (input.cadence !== undefined) {
    out.push("## Sync calls at frame cadence", "");
    out.push(
      "One sync call of 64 B each way, back to back, at 30 fps and at 4 " +
        "pipes x 30 fps, idle and with a CPU hog per core, against a C " +
        "pair and a minimal Deno FFI pair, interleaved in one run of " +
        `\`deno task bench:cadence\` (${input.cadence.rounds} rounds` +
        `${input.cadence.quick ? ", --quick" : ""}). What the call path ` +
        "does and where its time goes: [cadence.md](cadence.md).",
      "",
    );
    out.push(renderCadenceTable(input.cadence), "");
  }
  out.push("## All results", "");
  out.push(
    "Times are per iteration: mean (avg), 75th and 99th percentile. " +
      "“vs baseline” divides the group's baseline mean by the row's mean.",
    "",
  );
  let file: string | undefined;
  for (const group of groupRows(run.rows)) {
    if (group.file !== file) {
      file = group.file;
      out.push(`### \`${file}\``, "");
    }
    out.push(
      `#### ${
        group.group === null ? "(no group)" : escapeMarkdown(group.group)
      }`,
      "",
    );
    out.push(renderGroupTable(group));
  }
  if (run.failures.length > 0) {
    out.push("## Failed benches", "");
    for (const failure of run.failures) {
      out.push(
        `- \`${failure.file}\` ${escapeMarkdown(failure.name)}: ` +
          escapeMarkdown(failure.message),
      );
    }
    out.push("");
  }
  return out.join("\n");
}

// --- SVG ---------------------------------------------------------------------

/**
 * Escapes text for SVG/XML content and attribute values.
 *
 * @param text Any text.
 * @returns The text with `& < > " '` replaced by entities.
 */
export function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;").replaceAll('"', "&quot;")
    .replaceAll("'", "&apos;");
}

/** One series of a bar chart: a legend entry and one value per category. */
export interface BarSeries {
  /** Legend text. */
  name: string;
  /** Fill colour, e.g. `#1f6fb4`. */
  color: string;
  /** One value per category, in display units; `null` draws no bar. */
  values: readonly (number | null)[];
}

/** A grouped vertical bar chart. */
export interface BarChart {
  /** Title at the top. */
  title: string;
  /** Smaller line under the title, e.g. "Lower is better". */
  subtitle?: string;
  /** Label under the x axis. */
  xLabel: string;
  /** Label along the y axis, with the unit, e.g. "Round trip (µs)". */
  yLabel: string;
  /** Unit appended to the value labels on bars, e.g. `µs`. */
  unit: string;
  /** Category labels along the x axis (wrapped to fit). */
  categories: readonly string[];
  /** Series; each category shows one bar per series with a value there. */
  series: readonly BarSeries[];
  /** `"log"` for a log10 y axis; default `"linear"`. */
  scale?: "linear" | "log";
  /** Width in px; default 720. */
  width?: number;
  /** Height in px; default 420. */
  height?: number;
}

const FONT = "Helvetica, Arial, sans-serif";
const CHAR_W = 6.6; // rough width of one 12 px character

function wrap(text: string, maxChars: number, maxLines: number): string[] {
  // Words too long for a line break after a "." (e.g. `Class.method`); such
  // pieces rejoin without a space when they fit.
  const pieces = text.split(/\s+/).flatMap((word) =>
    (word.length > maxChars ? word.split(/(?<=\.)(?=.)/) : [word]).map((
      piece,
      i,
    ) => ({ piece, glue: i > 0 }))
  );
  const lines: string[] = [];
  let line = "";
  for (const { piece, glue } of pieces) {
    const joined = line === "" ? piece : line + (glue ? "" : " ") + piece;
    if (line === "" || joined.length <= maxChars) line = joined;
    else {
      lines.push(line);
      line = piece;
    }
  }
  if (line !== "") lines.push(line);
  if (lines.length > maxLines) {
    lines.length = maxLines;
    lines[maxLines - 1] += "…";
  }
  return lines;
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * power >= raw) return m * power;
  }
  return 10 * power;
}

function tickText(value: number): string {
  return value.toLocaleString("en-US", { maximumFractionDigits: 3 });
}

function r(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}

interface Axis {
  y: (value: number) => number;
  ticks: number[];
  minor: number[];
}

function makeAxis(
  values: number[],
  scale: "linear" | "log",
  top: number,
  bottom: number,
): Axis {
  const max = Math.max(...values, 0);
  if (scale === "log") {
    const positive = values.filter((v) => v > 0);
    let lo = 10 ** Math.floor(Math.log10(Math.min(...positive, 1)));
    let hi = 10 ** Math.ceil(Math.log10(Math.max(max, lo * 10)));
    // Leave room above the tallest bar for its value label.
    if (Math.log10(hi) - Math.log10(max) < 0.25) hi *= 10;
    if (positive.length === 0) [lo, hi] = [1, 10];
    const span = Math.log10(hi) - Math.log10(lo);
    const ticks: number[] = [];
    const minor: number[] = [];
    for (let d = lo; d <= hi * 1.0001; d *= 10) {
      ticks.push(d);
      if (d < hi) { for (let m = 2; m < 10; m++) minor.push(d * m); }
    }
    return {
      y: (v) =>
        bottom - (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span *
          (bottom - top),
      ticks,
      minor,
    };
  }
  const step = niceStep((max > 0 ? max * 1.12 : 1) / 5);
  const hi = Math.ceil((max > 0 ? max * 1.12 : 1) / step) * step;
  const ticks: number[] = [];
  for (let i = 0; i * step <= hi * 1.0001; i++) ticks.push(i * step);
  return { y: (v) => bottom - v / hi * (bottom - top), ticks, minor: [] };
}

/**
 * Renders a grouped vertical bar chart as a standalone SVG document: white
 * background, title, optional subtitle, legend, y axis with gridlines and
 * tick values, category labels, axis labels, and the value on every bar.
 * Every bar is a `<rect class="bar">` with a `<title>` tooltip. All text is
 * XML-escaped.
 *
 * @param chart What to draw.
 * @returns The SVG document.
 *
 * @example Two categories, one series
 * ```ts
 * import { assert } from "@std/assert";
 * import { renderBarChart } from "./_bench_report_lib.ts";
 *
 * const svg = renderBarChart({
 *   title: "Spawn time",
 *   xLabel: "Method",
 *   yLabel: "Time (ms)",
 *   unit: "ms",
 *   categories: ["a", "b"],
 *   series: [{ name: "isola", color: "#1f6fb4", values: [1.2, 0.9] }],
 * });
 * assert(svg.startsWith("<svg"));
 * assert(svg.includes("Spawn time"));
 * ```
 */
export function renderBarChart(chart: BarChart): string {
  const width = chart.width ?? 720;
  const height = chart.height ?? 420;
  const scale = chart.scale ?? "linear";
  const left = 84;
  const right = width - 24;
  const top = 92;
  const bottom = height - 92;
  const drawable = (v: number | null): v is number =>
    v !== null && Number.isFinite(v) && (scale === "linear" ? v >= 0 : v > 0);
  const values = chart.series.flatMap((s) => s.values.filter(drawable));
  const axis = makeAxis(values, scale, top, bottom);
  const out: string[] = [];
  const text = (
    x: number,
    y: number,
    content: string,
    attrs = "",
  ) =>
    out.push(
      `<text x="${r(x)}" y="${r(y)}"${attrs}>${escapeXml(content)}</text>`,
    );

  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" ` +
      `height="${height}" viewBox="0 0 ${width} ${height}" role="img" ` +
      `aria-labelledby="chart-title" font-family="${FONT}">`,
    `<title id="chart-title">${escapeXml(chart.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  );
  text(
    width / 2,
    28,
    chart.title,
    ' text-anchor="middle" font-size="18" ' +
      'font-weight="bold" fill="#222222"',
  );
  if (chart.subtitle) {
    text(
      width / 2,
      48,
      chart.subtitle,
      ' text-anchor="middle" ' +
        'font-size="12" fill="#555555"',
    );
  }

  // Legend, centred on one row.
  const entries = chart.series.map((s) => ({
    s,
    w: 18 + s.name.length * CHAR_W + 20,
  }));
  let lx = width / 2 - entries.reduce((sum, e) => sum + e.w, 0) / 2 + 10;
  out.push('<g class="legend">');
  for (const { s, w } of entries) {
    out.push(
      `<rect x="${r(lx)}" y="62" width="12" height="12" ` +
        `fill="${escapeXml(s.color)}"/>`,
    );
    text(lx + 18, 72.5, s.name, ' font-size="12" fill="#222222"');
    lx += w;
  }
  out.push("</g>");

  // Gridlines and y ticks.
  out.push('<g class="grid">');
  for (const m of axis.minor) {
    out.push(
      `<line x1="${left}" x2="${right}" y1="${r(axis.y(m))}" ` +
        `y2="${r(axis.y(m))}" stroke="#f0f0f0"/>`,
    );
  }
  for (const t of axis.ticks) {
    const y = axis.y(t);
    out.push(
      `<line x1="${left}" x2="${right}" y1="${r(y)}" y2="${r(y)}" ` +
        `stroke="#dddddd"/>`,
    );
    text(
      left - 8,
      y + 4,
      tickText(t),
      ' text-anchor="end" font-size="11" ' +
        'fill="#444444"',
    );
  }
  out.push("</g>");

  // Bars, value labels and category labels.
  const n = Math.max(chart.categories.length, 1);
  const slot = (right - left) / n;
  const maxChars = Math.max(4, Math.floor(slot * 0.95 / CHAR_W));
  out.push('<g class="bars">');
  chart.categories.forEach((category, i) => {
    const bars = chart.series.flatMap((s) => {
      const v = s.values[i] ?? null;
      return drawable(v) ? [{ s, v }] : [];
    });
    const gap = 4;
    const barW = Math.min(
      90,
      (slot * 0.72 - gap * (bars.length - 1)) / Math.max(bars.length, 1),
    );
    const groupW = bars.length * barW + (bars.length - 1) * gap;
    let x = left + slot * i + (slot - groupW) / 2;
    for (const { s, v } of bars) {
      const y = axis.y(v);
      const label = `${formatNumber(v)} ${chart.unit}`;
      out.push(
        `<rect class="bar" x="${r(x)}" y="${r(y)}" width="${r(barW)}" ` +
          `height="${r(Math.max(bottom - y, 0.5))}" ` +
          `fill="${escapeXml(s.color)}">` +
          `<title>${escapeXml(`${category} — ${s.name}: ${label}`)}</title>` +
          "</rect>",
      );
      text(
        x + barW / 2,
        y - 5,
        label,
        ' text-anchor="middle" ' +
          'font-size="11" fill="#222222"',
      );
      x += barW + gap;
    }
    wrap(category, maxChars, 3).forEach((line, j) =>
      text(
        left + slot * (i + 0.5),
        bottom + 18 + j * 14,
        line,
        " " +
          'text-anchor="middle" font-size="12" fill="#222222"',
      )
    );
  });
  out.push("</g>");

  // Axes and axis labels.
  out.push(
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${bottom}" ` +
      'stroke="#333333"/>',
    `<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" ` +
      'stroke="#333333"/>',
  );
  text(
    (left + right) / 2,
    height - 14,
    chart.xLabel,
    ' text-anchor="middle" font-size="13" font-weight="bold" fill="#222222"',
  );
  const midY = (top + bottom) / 2;
  text(
    20,
    midY,
    chart.yLabel,
    ` text-anchor="middle" font-size="13" font-weight="bold" ` +
      `fill="#222222" transform="rotate(-90 20 ${r(midY)})"`,
  );
  out.push("</svg>");
  return out.join("\n") + "\n";
}

// --- Charts from bench rows ------------------------------------------------

/** Fill colour of isola's bars. */
export const ISOLA_COLOR = "#1f6fb4";
/** Fill colour of the Deno built-in baselines' bars. */
export const BUILTIN_COLOR = "#e8862a";

const ISOLA_NAME = /^(Ipc|Process\b|IpaProxy|\d+ sequential|\d+ Promise)/;

/**
 * Whether a bench measures isola (as opposed to a Deno built-in used as a
 * baseline): names starting with `Ipc…`, `Process`, `IpaProxy…`.
 *
 * @param name A bench name.
 * @returns `true` for isola's own benches.
 */
export function isIsolaBench(name: string): boolean {
  return ISOLA_NAME.test(name);
}

function findGroup(
  rows: readonly BenchRow[],
  group: string,
): BenchRow[] {
  return rows.filter((row) => row.group === group);
}

/** Payload sizes of the `round trip …` groups, in chart order. */
export const ROUND_TRIP_SIZES = ["64 B", "4 KiB", "64 KiB", "1 MiB"] as const;

/**
 * Round-trip latency by payload size: for each `round trip <size>` group,
 * a bar for the baseline (Worker postMessage) next to isola's
 * IpcUnixSocket, on a log scale.
 *
 * @param rows All rows of the run.
 * @returns The chart, or `null` if no such group was measured.
 */
export function roundTripChart(rows: readonly BenchRow[]): BarChart | null {
  const categories: string[] = [];
  const base: (number | null)[] = [];
  const isola: (number | null)[] = [];
  for (const size of ROUND_TRIP_SIZES) {
    const group = findGroup(rows, `round trip ${size}`);
    if (group.length === 0) continue;
    categories.push(size);
    base.push(group.find((row) => row.baseline)?.avg ?? null);
    isola.push(group.find((row) => !row.baseline)?.avg ?? null);
  }
  if (categories.length === 0) return null;
  const all = [...base, ...isola].filter((v): v is number => v !== null);
  const unit = timeUnitFor(Math.min(...all));
  const scaled = (v: number | null) => v === null ? null : v / unit.ns;
  return {
    title: "Round-trip latency by payload size",
    subtitle: "Mean time per round trip, main thread ↔ Worker · " +
      "lower is better · log scale",
    xLabel: "Payload per message (each way)",
    yLabel: `Round-trip time (${unit.symbol}, log scale)`,
    unit: unit.symbol,
    categories,
    series: [
      {
        name: "Worker postMessage (baseline)",
        color: BUILTIN_COLOR,
        values: base.map(scaled),
      },
      {
        name: "isola IpcUnixSocket send + receive",
        color: ISOLA_COLOR,
        values: isola.map(scaled),
      },
    ],
    scale: "log",
  };
}

/**
 * Parses a `one way fds` bench name such as
 * `IpcUnixSocket one way, 100 messages x 16 fd` (or `… x 64 B`: no fd).
 *
 * @param name A bench name.
 * @returns Messages per iteration and fds per message, or `null`.
 */
export function parseOneWayName(
  name: string,
): { messages: number; fds: number } | null {
  const match = /(\d+) messages x (\d+) (fds?|B)\b/.exec(name);
  if (match === null) return null;
  return {
    messages: Number(match[1]),
    fds: match[3] === "B" ? 0 : Number(match[2]),
  };
}

/**
 * File descriptors per second from the `one way fds` group: per bench,
 * messages/s = messages per iteration / mean time, and fds/s = that × fds
 * per message. (Each iteration also includes one acknowledged round trip.)
 *
 * @param rows All rows of the run.
 * @returns The chart, or `null` if the group was not measured.
 */
export function fdsPerSecondChart(rows: readonly BenchRow[]): BarChart | null {
  const points = findGroup(rows, "one way fds").flatMap((row) => {
    const parsed = parseOneWayName(row.name);
    return parsed === null ? [] : [{ row, ...parsed }];
  }).sort((a, b) => a.fds - b.fds);
  if (points.length === 0) return null;
  const perSecond = (count: number, ns: number) => count / (ns / 1e9) / 1e3;
  return {
    title: "File descriptors passed per second",
    subtitle: `IpcUnixSocket, one way, main thread → Worker, ${
      points[0].messages
    } messages per iteration · higher is better`,
    xLabel: "fds attached to each message",
    yLabel: "Throughput (thousands per second)",
    unit: "k/s",
    categories: points.map(({ fds }) =>
      fds === 0
        ? "no fd (64 B data only)"
        : `${fds} fd${fds === 1 ? "" : "s"} per message`
    ),
    series: [
      {
        name: "messages per second",
        color: "#8fb8de",
        values: points.map((p) => perSecond(p.messages, p.row.avg)),
      },
      {
        name: "fds per second",
        color: ISOLA_COLOR,
        values: points.map((p) =>
          p.fds === 0 ? null : perSecond(p.messages * p.fds, p.row.avg)
        ),
      },
    ],
  };
}

function builtinVsIsola(
  group: readonly BenchRow[],
  label: (row: BenchRow) => string,
  spec: Omit<BarChart, "categories" | "series" | "unit" | "yLabel"> & {
    yLabel: (unit: string) => string;
  },
): BarChart {
  const unit = timeUnitFor(Math.max(...group.map((row) => row.avg)));
  const categories = group.map((row) =>
    label(row) + (row.baseline ? " (baseline)" : "")
  );
  const values = (isola: boolean) =>
    group.map((row) =>
      isIsolaBench(row.name) === isola ? row.avg / unit.ns : null
    );
  return {
    ...spec,
    yLabel: spec.yLabel(unit.symbol),
    unit: unit.symbol,
    categories,
    series: [
      { name: "Deno built-in", color: BUILTIN_COLOR, values: values(false) },
      { name: "isola", color: ISOLA_COLOR, values: values(true) },
    ],
  };
}

/**
 * Spawn time from the `spawn+reap` group: isola's Process (clone3,
 * posix_spawn, isolated) against Deno.Command, one bar per bench.
 *
 * @param rows All rows of the run.
 * @returns The chart, or `null` if the group was not measured.
 */
export function spawnChart(rows: readonly BenchRow[]): BarChart | null {
  const group = findGroup(rows, "spawn+reap");
  if (group.length === 0) return null;
  return builtinVsIsola(
    group,
    (row) => row.name.replace(" /bin/true", ""),
    {
      title: "Process spawn time",
      subtitle: "Spawn /bin/true and wait for it to exit · mean per " +
        "process · lower is better",
      xLabel: "Spawn method",
      yLabel: (unit) => `Spawn + reap time (${unit})`,
    },
  );
}

/**
 * Sync call latency from the `sync round trip 64 B` group: isola's
 * IpcPipeUnixSocket.sendSync against Worker postMessage and a Deno.Command
 * child echoing lines, one bar per bench.
 *
 * @param rows All rows of the run.
 * @returns The chart, or `null` if the group was not measured.
 */
export function syncCallChart(rows: readonly BenchRow[]): BarChart | null {
  const group = findGroup(rows, "sync round trip 64 B");
  if (group.length === 0) return null;
  return builtinVsIsola(
    group,
    (row) =>
      row.name.replace(" round trip 64 B", "").replace(" 64 B", "")
        .replace(", isolated,", ","),
    {
      title: "Sync call latency, 64 B request and reply",
      subtitle: "Mean time per call, 64 B each way; isola calls an isolated " +
        "child process · lower is better",
      xLabel: "Transport (isola's sendSync blocks; the built-ins are awaited)",
      yLabel: (unit) => `Round-trip time (${unit})`,
    },
  );
}
