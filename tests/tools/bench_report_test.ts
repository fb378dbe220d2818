import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  BENCH_FLAGS,
  type BenchRow,
  CADENCE_FLAGS,
  type CadenceRun,
  escapeXml,
  fdsPerSecondChart,
  formatDuration,
  formatRatio,
  groupRows,
  type MachineInfo,
  parseBenchJson,
  parseCadenceJson,
  renderBarChart,
  renderCadenceTable,
  renderGroupTable,
  renderReport,
  roundTripChart,
  spawnChart,
  syncCallChart,
} from "../../tools/_bench_report_lib.ts";

// A cut-down `deno bench --json` output (Deno 2.9 shape); times in ns.
function bench(
  file: string,
  group: string | null,
  name: string,
  avg: number,
  baseline = false,
  extra: Record<string, number> = {},
) {
  return {
    origin: `file:///repo/bench/${file}`,
    group,
    name,
    baseline,
    results: [{
      ok: {
        n: 1000,
        min: avg / 2,
        max: avg * 3,
        avg,
        p75: avg * 1.1,
        p99: avg * 2,
        p995: avg * 2.5,
        p999: avg * 2.9,
        highPrecision: false,
        usedExplicitTimers: false,
        ...extra,
      },
    }],
  };
}

const SAMPLE = JSON.stringify({
  version: 1,
  runtime: "Deno/2.9.6 x86_64-unknown-linux-gnu",
  cpu: "Test CPU <&>",
  benches: [
    bench(
      "process_bench.ts",
      "spawn+reap",
      "Deno.Command /bin/true",
      1.2e6,
      true,
    ),
    bench("process_bench.ts", "spawn+reap", "Process /bin/true (clone3)", 3e5),
    bench("process_bench.ts", "spawn+reap", "Process <&> /bin/true", 2.4e6),
    bench(
      "unix_socket_bench.ts",
      "round trip 64 B",
      "postMessage 64 B",
      8e4,
      true,
    ),
    bench("unix_socket_bench.ts", "round trip 64 B", "IpcUnixSocket 64 B", 2e4),
    bench(
      "unix_socket_bench.ts",
      "round trip 1 MiB",
      "postMessage 1 MiB",
      8e5,
      true,
      { p50: 7e5 },
    ),
    bench(
      "unix_socket_bench.ts",
      "round trip 1 MiB",
      "IpcUnixSocket 1 MiB",
      1.6e6,
    ),
    bench(
      "unix_socket_bench.ts",
      "one way fds",
      "IpcUnixSocket one way, 100 messages x 1 fd",
      5e5,
      true,
    ),
    bench(
      "unix_socket_bench.ts",
      "one way fds",
      "IpcUnixSocket one way, 100 messages x 16 fd",
      1e6,
    ),
    bench(
      "unix_socket_bench.ts",
      "one way fds",
      "IpcUnixSocket one way, 100 messages x 64 B",
      4e5,
    ),
    bench(
      "pipe_bench.ts",
      "sync round trip 64 B",
      "Worker postMessage round trip 64 B",
      1e5,
      true,
    ),
    bench(
      "pipe_bench.ts",
      "sync round trip 64 B",
      "Deno.Command child 64 B",
      9e4,
    ),
    bench(
      "pipe_bench.ts",
      "sync round trip 64 B",
      "IpcPipeUnixSocket.sendSync 64 B, isolated, blocking worker",
      2.5e4,
    ),
    bench("pipe_bench.ts", null, "ungrouped | bench", 50),
    {
      origin: "file:///repo/bench/pipe_bench.ts",
      group: null,
      name: "broken",
      baseline: false,
      results: [{ failed: { name: "Error", message: "boom" } }],
    },
  ],
});

const MACHINE: MachineInfo = {
  cpu: "Test CPU <&>",
  cpus: 2,
  memoryBytes: 4 * 2 ** 30,
  kernel: "6.1.0-test",
  os: "linux x86_64",
  runtime: "Deno 2.9.6",
  date: "2026-01-02T03:04:05Z",
  description: "noisy 2-vCPU VM",
};

/** Returns `value`, failing the test if it is null or undefined. */
function must<T>(value: T | null | undefined, what = "value"): T {
  if (value === null || value === undefined) throw new Error(`no ${what}`);
  return value;
}

function row(run: { rows: BenchRow[] }, name: string): BenchRow {
  return must(run.rows.find((r) => r.name === name), `row ${name}`);
}

function count(haystack: string, needle: string | RegExp): number {
  return haystack.split(needle).length - 1;
}

Deno.test("parseBenchJson() collects every finished bench and each failure", () => {
  const run = parseBenchJson(SAMPLE);
  assertEquals(run.cpu, "Test CPU <&>");
  assertEquals(run.runtime, "Deno/2.9.6 x86_64-unknown-linux-gnu");
  assertEquals(run.rows.length, 14);
  assertEquals(run.failures, [{
    name: "broken",
    group: null,
    file: "pipe_bench.ts",
    message: "boom",
  }]);
  assertEquals(row(run, "Deno.Command /bin/true"), {
    name: "Deno.Command /bin/true",
    group: "spawn+reap",
    baseline: true,
    file: "process_bench.ts",
    avg: 1.2e6,
    p75: 1.2e6 * 1.1,
    p99: 2.4e6,
    min: 6e5,
    max: 3.6e6,
    iterations: 1000,
  });
  assertEquals(row(run, "postMessage 1 MiB").p50, 7e5);
  assertEquals(row(run, "IpcUnixSocket 1 MiB").p50, undefined);
});

Deno.test("parseBenchJson() throws when the output is not bench JSON", () => {
  assertThrows(() => parseBenchJson("{"), SyntaxError);
  assertThrows(() => parseBenchJson('{"version":1}'), TypeError, "benches");
  assertThrows(
    () =>
      parseBenchJson(JSON.stringify({
        benches: [{ name: "x", results: [{ ok: { avg: "fast" } }] }],
      })),
    TypeError,
    '"avg"',
  );
});

Deno.test("groupRows() keeps run order and separates files", () => {
  const groups = groupRows(parseBenchJson(SAMPLE).rows);
  assertEquals(
    groups.map((g) => `${g.file}:${g.group}:${g.rows.length}`),
    [
      "process_bench.ts:spawn+reap:3",
      "unix_socket_bench.ts:round trip 64 B:2",
      "unix_socket_bench.ts:round trip 1 MiB:2",
      "unix_socket_bench.ts:one way fds:3",
      "pipe_bench.ts:sync round trip 64 B:3",
      "pipe_bench.ts:null:1",
    ],
  );
});

Deno.test("formatRatio() compares mean times with the baseline", () => {
  const run = parseBenchJson(SAMPLE);
  const base = row(run, "Deno.Command /bin/true");
  assertEquals(formatRatio(base, base), "baseline");
  assertEquals(
    formatRatio(row(run, "Process /bin/true (clone3)"), base),
    "4.0× faster",
  );
  assertEquals(
    formatRatio(row(run, "Process <&> /bin/true"), base),
    "2.0× slower",
  );
  assertEquals(formatRatio({ ...base, avg: 1.25e6 }, base), "≈ same");
  assertEquals(formatRatio({ ...base, avg: 1.3e6 }, base), "1.1× slower");
  assertEquals(formatRatio({ ...base, avg: 1e4 }, base), "120× faster");
  assertEquals(formatRatio(base), "—");
});

Deno.test("formatDuration() picks a unit and keeps three digits", () => {
  assertEquals(formatDuration(4.2512), "4.25 ns");
  assertEquals(formatDuration(113_573), "114 µs");
  assertEquals(formatDuration(27_190), "27.2 µs");
  assertEquals(formatDuration(3_134_711), "3.13 ms");
  assertEquals(formatDuration(12_345_678_901), "12.3 s");
});

Deno.test("renderGroupTable() shows each row's ratio to the baseline and escapes names", () => {
  const [spawn] = groupRows(parseBenchJson(SAMPLE).rows);
  const table = renderGroupTable(spawn);
  const lines = table.trimEnd().split("\n");
  assertEquals(lines.length, 5);
  assertEquals(
    lines[0],
    "| Bench | avg | p75 | p99 | iterations | vs baseline |",
  );
  assertEquals(
    lines[2],
    "| Deno.Command /bin/true _(baseline)_ | 1.20 ms | 1.32 ms | 2.40 ms | 1,000 | baseline |",
  );
  assertMatch(
    lines[3],
    /^\| Process \/bin\/true \(clone3\) \| 300 µs .*\| 4\.0× faster \|$/,
  );
  assertMatch(
    lines[4],
    /^\| Process &lt;&amp;&gt; \/bin\/true \|.*\| 2\.0× slower \|$/,
  );
});

Deno.test("renderGroupTable() adds a p50 column only when Deno reports one", () => {
  const groups = groupRows(parseBenchJson(SAMPLE).rows);
  const mib = must(groups.find((g) => g.group === "round trip 1 MiB"));
  const table = renderGroupTable(mib);
  assertStringIncludes(table, "| Bench | avg | p50 | p75 |");
  assertStringIncludes(table, "| 800 µs | 700 µs |");
  assertStringIncludes(table, "| 1.60 ms | — |");
  const ungrouped = must(groups.find((g) => g.group === null));
  const plain = renderGroupTable(ungrouped);
  assert(!plain.includes("p50"));
  assertStringIncludes(plain, "| ungrouped \\| bench | 50.0 ns |");
  assertStringIncludes(plain, "| — |");
});

Deno.test("spawnChart() draws one labelled bar per bench with title, axes and legend", () => {
  const chart = must(spawnChart(parseBenchJson(SAMPLE).rows));
  assertEquals(chart.unit, "ms");
  const svg = renderBarChart(chart);
  assert(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert(svg.trimEnd().endsWith("</svg>"));
  assertStringIncludes(svg, 'width="720" height="420"');
  assertStringIncludes(svg, '<rect width="720" height="420" fill="#ffffff"/>');
  assertStringIncludes(svg, ">Process spawn time</text>");
  assertStringIncludes(svg, ">Spawn method</text>");
  assertStringIncludes(svg, ">Spawn + reap time (ms)</text>");
  assertStringIncludes(svg, '<g class="legend">');
  assertStringIncludes(svg, ">Deno built-in</text>");
  assertStringIncludes(svg, ">isola</text>");
  assertEquals(count(svg, '<rect class="bar"'), 3);
  assertStringIncludes(svg, ">1.20 ms</text>");
  assertStringIncludes(svg, ">0.30 ms</text>");
  assertStringIncludes(svg, ">2.40 ms</text>");
  assertStringIncludes(svg, ">Deno.Command (baseline)</text>");
  assertEquals(count(svg, "<text"), count(svg, "</text>"));
});

Deno.test("renderBarChart() escapes <&> in names, titles and labels", () => {
  const chart = must(spawnChart(parseBenchJson(SAMPLE).rows));
  const svg = renderBarChart({
    ...chart,
    title: "a < b & c > d",
    series: [{ ...chart.series[1], name: 'isola "<&>"' }, chart.series[0]],
  });
  assertStringIncludes(svg, ">a &lt; b &amp; c &gt; d</text>");
  assertStringIncludes(svg, ">Process &lt;&amp;&gt;</text>");
  assertStringIncludes(svg, ">isola &quot;&lt;&amp;&gt;&quot;</text>");
  // Every & starts an entity; no < or > inside text content.
  assertEquals(svg.match(/&(?!(amp|lt|gt|quot|apos);)/g), null);
  for (const [, content] of svg.matchAll(/>([^<]*)</g)) {
    assert(!content.includes(">"), content);
  }
  assertEquals(
    escapeXml(`<a href="x">&'`),
    "&lt;a href=&quot;x&quot;&gt;&amp;&apos;",
  );
});

Deno.test("roundTripChart() pairs the baseline with isola per payload size on a log scale", () => {
  const chart = must(roundTripChart(parseBenchJson(SAMPLE).rows));
  assertEquals(chart.scale, "log");
  assertEquals(chart.categories, ["64 B", "1 MiB"]);
  assertEquals(chart.unit, "µs");
  assertEquals(chart.series.map((s) => s.values), [[80, 800], [20, 1600]]);
  assertStringIncludes(chart.yLabel, "µs, log scale");
  const svg = renderBarChart(chart);
  assertEquals(count(svg, '<rect class="bar"'), 4);
  assertStringIncludes(svg, ">Worker postMessage (baseline)</text>");
  assertStringIncludes(svg, ">Payload per message (each way)</text>");
  // Decade ticks span the data.
  for (const tick of ["10", "100", "1,000", "10,000"]) {
    assertStringIncludes(svg, `>${tick}</text>`);
  }
});

Deno.test("fdsPerSecondChart() divides messages × fds by the mean time", () => {
  const chart = must(fdsPerSecondChart(parseBenchJson(SAMPLE).rows));
  assertEquals(chart.categories, [
    "no fd (64 B data only)",
    "1 fd per message",
    "16 fds per message",
  ]);
  const [messages, fds] = chart.series.map((s) => s.values);
  // 100 messages in 400 µs, 500 µs, 1 ms: 250k, 200k, 100k messages/s.
  assertEquals(messages, [250, 200, 100]);
  assertEquals(fds[0], null);
  assertAlmostEquals(fds[1]!, 200);
  assertAlmostEquals(fds[2]!, 1600);
  assertEquals(count(renderBarChart(chart), '<rect class="bar"'), 5);
});

Deno.test("syncCallChart() splits built-ins and isola into two series", () => {
  const chart = must(syncCallChart(parseBenchJson(SAMPLE).rows));
  assertEquals(chart.categories, [
    "Worker postMessage (baseline)",
    "Deno.Command child",
    "IpcPipeUnixSocket.sendSync, blocking worker",
  ]);
  assertEquals(chart.series.map((s) => s.values), [
    [100, 90, null],
    [null, null, 25],
  ]);
  assertEquals(count(renderBarChart(chart), '<rect class="bar"'), 3);
});

Deno.test("chart builders return null when their group was not run", () => {
  const rows = parseBenchJson(SAMPLE).rows.filter((r) => r.group === null);
  assertEquals(roundTripChart(rows), null);
  assertEquals(fdsPerSecondChart(rows), null);
  assertEquals(spawnChart(rows), null);
  assertEquals(syncCallChart(rows), null);
});

Deno.test("renderReport() has the caveat, machine, charts, tables and failures", () => {
  const md = renderReport({
    run: parseBenchJson(SAMPLE),
    machine: MACHINE,
    charts: [{ path: "img/a.svg", title: "Chart <a>", note: "How to read." }],
    command: "deno task bench:report",
  });
  assertStringIncludes(
    md,
    "from one run on a noisy 2-vCPU VM",
  );
  assertStringIncludes(md, "Only ratios within one run");
  assertStringIncludes(md, "| CPU | Test CPU &lt;&amp;&gt; |");
  assertStringIncludes(md, "| Memory | 4.0 GiB |");
  assertStringIncludes(md, "| Kernel | 6.1.0-test |");
  assertStringIncludes(md, "| Date | 2026-01-02T03:04:05Z |");
  assertStringIncludes(md, "Run `deno task bench:report`");
  assertStringIncludes(md, "![Chart &lt;a&gt;](img/a.svg)\n\nHow to read.");
  assertEquals(count(md, "| Bench | avg |"), 6);
  assertStringIncludes(md, "### `process_bench.ts`\n\n#### spawn+reap\n");
  assertStringIncludes(md, "#### (no group)");
  assertStringIncludes(
    md,
    "## Failed benches\n\n- `pipe_bench.ts` broken: boom",
  );
});

Deno.test("BENCH_FLAGS are the bench task's permission flags", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  const task: string = config.tasks.bench;
  const flags = task.split(/\s+/).filter((word) => word.startsWith("--"));
  assertEquals([...BENCH_FLAGS].sort(), flags.sort());
});

const CADENCE: CadenceRun = {
  date: "2026-11-30T00:00:00Z",
  quick: true,
  rounds: 2,
  rows: [
    ["idle", "30 fps", "Deno FFI pair", 80, 400],
    ["idle", "30 fps", "IPA isolated", 240, 1200],
    ["under load", "30 fps", "Deno FFI pair", 100, 500],
    ["under load", "30 fps", "IPA | isolated", 150, 250],
  ].map(([section, regime, contender, p50, p99]) => ({
    section: section as string,
    regime: regime as string,
    contender: contender as string,
    samples: 60,
    p50: p50 as number,
    p99: p99 as number,
    roundP50Min: (p50 as number) - 5,
    roundP50Max: (p50 as number) + 5,
  })),
};

Deno.test("renderCadenceTable() divides by the Deno FFI pair of the same regime and section", () => {
  const md = renderCadenceTable(CADENCE);
  assertStringIncludes(
    md,
    "| 30 fps | IPA isolated | 240 (235–245) | 1200 | 3.00 | 3.00 |",
  );
  assertStringIncludes(
    md,
    "| 30 fps, under load | IPA \\| isolated | 150 (145–155) | 250 | 1.50 | 0.50 |",
  );
  assertStringIncludes(md, "| 30 fps | Deno FFI pair | 80.0 (75.0–85.0) |");
});

Deno.test("parseCadenceJson() reads bench/cadence.ts output and refuses anything else", () => {
  assertEquals(parseCadenceJson(JSON.stringify(CADENCE)), CADENCE);
  assertThrows(() => parseCadenceJson("{}"), TypeError);
  assertThrows(
    () => parseCadenceJson(JSON.stringify({ rows: [{ section: "idle" }] })),
    TypeError,
  );
});

Deno.test("renderReport() has the cadence section when given one, and none otherwise", () => {
  const base = {
    run: parseBenchJson(SAMPLE),
    machine: MACHINE,
    charts: [],
    command: "deno task bench:report",
  };
  const md = renderReport({ ...base, cadence: CADENCE });
  assertStringIncludes(md, "## Sync calls at frame cadence");
  assertStringIncludes(md, "(2 rounds, --quick)");
  assert(
    md.indexOf("## Sync calls at frame cadence") < md.indexOf("## All results"),
  );
  assertEquals(renderReport(base).includes("frame cadence"), false);
});

Deno.test("CADENCE_FLAGS are the bench:cadence task's permission flags", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  const task: string = config.tasks["bench:cadence"];
  const flags = task.split(/\s+/).filter((word) => word.startsWith("--"));
  assertEquals([...CADENCE_FLAGS].sort(), flags.sort());
});
