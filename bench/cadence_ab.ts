// A/B of source trees at 30 fps, in one interleaved run: for each round,
// each mode, each tree, one process (bench/_cadence_ab_driver.ts) makes
// back-to-back calls and then calls at 30 fps. The machine's noise then
// falls on both trees alike; keep a change only if it wins in two runs.
//
//   deno task bench:cadence-ab [--rounds 3] [--calls 150]
//     [--back-to-back 500] [--modes ffi,blocking,serve,ipa]
//     NAME=ROOT [NAME=ROOT ...]
//
// ROOT is a checkout of isola (e.g. `git worktree add /tmp/base HEAD~1`);
// the driver loads the contenders from each tree. Modes: see the driver
// (ffi, blocking, serve, ipa, and sync-echo, ffi-worker, stub, which take
// the path apart). `ffi` runs from the first tree only (it is the same
// everywhere). Prints p50, p90, p99 (µs) and the per-round medians.
import { parseArgs } from "@std/cli/parse-args";

const args = parseArgs(Deno.args, {
  string: ["rounds", "calls", "back-to-back", "modes"],
  default: {
    rounds: "3",
    calls: "150",
    "back-to-back": "500",
    modes: "ffi,blocking,serve,ipa",
  },
});
const trees = args._.map(String).map((spec: string) => {
  const eq = spec.indexOf("=");
  if (eq <= 0) {
    throw new TypeError(`Cannot read tree "${spec}": expected NAME=ROOT`);
  }
  return { name: spec.slice(0, eq), root: spec.slice(eq + 1) };
});
if (trees.length === 0) throw new TypeError("Cannot compare: no NAME=ROOT");
const DRIVER = new URL("./_cadence_ab_driver.ts", import.meta.url).pathname;
const FLAGS = [
  "--allow-ffi",
  "--allow-read",
  "--allow-write=/tmp",
  "--allow-env",
  "--allow-run",
];

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

const results = new Map<string, number[][]>();
for (let round = 0; round < Number(args.rounds); round++) {
  for (const mode of args.modes.split(",")) {
    for (const { name, root } of mode === "ffi" ? trees.slice(0, 1) : trees) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...FLAGS,
          "--config",
          `${root}/deno.json`,
          DRIVER,
          root,
          mode,
          args.calls,
          args["back-to-back"],
        ],
        stderr: "inherit",
      }).output();
      if (!out.success) {
        throw new Error(`Cannot measure ${mode} of ${name}: driver failed`);
      }
      const key = mode === "ffi" ? mode : `${mode} ${name}`;
      const list = results.get(key) ?? [];
      list.push(JSON.parse(new TextDecoder().decode(out.stdout)));
      results.set(key, list);
    }
  }
}
for (const [key, rounds] of results) {
  const all = rounds.flat().sort((a, b) => a - b);
  const medians = rounds.map((r) =>
    percentile([...r].sort((a, b) => a - b), 50).toFixed(0)
  );
  console.log(
    `${key.padEnd(24)} p50 ${percentile(all, 50).toFixed(1).padStart(7)}` +
      `  p90 ${percentile(all, 90).toFixed(0).padStart(6)}` +
      `  p99 ${percentile(all, 99).toFixed(0).padStart(6)}` +
      `  rounds ${medians.join(" ")}`,
  );
}
