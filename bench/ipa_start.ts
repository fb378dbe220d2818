// Start + close of an isolated IPA worker with the full jail against the
// layers it had before the jail (namespaces + Landlock), interleaved in
// one process (pairs in alternating order, medians): `deno bench` runs
// each case's iterations one after the other, and a ~230 ms start drifts
// with the machine between them.
//
//   deno run --allow-ffi --allow-read --allow-env bench/ipa_start.ts [PAIRS]
import { CameraIpa, IpaProxyIsolated, type ProcessIsolation } from "../mod.ts";
import { NAMESPACES_ONLY } from "./_isolation_cases.ts";

const MODULE = new URL("../examples/ipa/vendor_ae_awb.ts", import.meta.url)
  .pathname;
const BEFORE_JAIL: ProcessIsolation = { ...NAMESPACES_ONLY, landlock: true };
const PAIRS = Number(Deno.args[0] ?? 20);
const TIMEOUT_MS = 20_000;
const times = { jail: [] as number[], before: [] as number[] };

async function once(which: "jail" | "before"): Promise<void> {
  const t0 = performance.now();
  const ipa = await IpaProxyIsolated.create(CameraIpa, MODULE, {
    timeout: TIMEOUT_MS,
    ...(which === "before" ? { isolate: BEFORE_JAIL } : {}),
  });
  await ipa.close();
  times[which].push(performance.now() - t0);
}

await once("jail"); // first starts fill caches: not counted
await once("before");
times.jail = [];
times.before = [];
for (let i = 0; i < PAIRS; i++) {
  const order = i % 2 === 0
    ? ["jail", "before"] as const
    : ["before", "jail"] as const;
  for (const w of order) await once(w);
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const j = median(times.jail), b = median(times.before);
console.log(
  `IPA start+close, median of ${PAIRS}: full jail ${j.toFixed(1)} ms, ` +
    `namespaces + Landlock ${b.toFixed(1)} ms, ratio ${(j / b).toFixed(3)}`,
);
