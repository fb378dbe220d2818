// Load campaign, full size: `deno task test:stress`. Counts are asserted;
// throughput and RSS are printed for the record, never judged here.
// Deterministic data from a seed (`ISOLA_STRESS_SEED` overrides it).
import { assert, assertEquals } from "@std/assert";
import { RECEIVER, stressSeed, syncLoad } from "../fixtures/fault_scenarios.ts";
import { assertNoFdLeak, fdSnapshot, warmUpWorkers } from "../_helpers.ts";

const SEED = stressSeed(20261122);
const MB = 1 << 20;

Deno.test("`IpcPipeUnixSocket.sendSync()`: 1,000,000 calls over 8 streaming workers, no reply lost or misrouted, no event lost", async () => {
  await warmUpWorkers(RECEIVER);
  const before = fdSnapshot();
  const s = await syncLoad(1_000_000, 8, SEED);
  await assertNoFdLeak(before);
  const rss = s.rss.map(([, b]) => (b / MB).toFixed(1)).join(" ");
  console.log(
    `seed ${SEED}: ${s.calls} sync calls over ${s.pipes} pipes (batches of 256) in ` +
      `${(s.ms / 1000).toFixed(1)} s after warm-up: ` +
      `${Math.round(s.perSecond)} calls/s, ${s.usPerCall.toFixed(1)} µs ` +
      `per call; ${s.events} events, ${s.eventGaps} gaps; ${s.misrouted} ` +
      `misrouted\n  RSS (MiB) from 5 % to 100 %: ${rss}; growth ` +
      `${(s.rssGrowth * 100).toFixed(2)} % (${
        "gc" in globalThis ? "gc before each sample" : "no gc: lows"
      }), peak ` +
      `+${(s.rssPeak * 100).toFixed(1)} %`,
  );
  assertEquals(s.misrouted, 0);
  assertEquals(s.eventGaps, 0);
  assert(s.events > 1000, `only ${s.events} events`);
});
