// The full fuzz runs of issue 7: at least 100,000 random and mutated frames
// into IpcUnixSocket.receive() and 100,000 mutated IPA encodings into
// decodeIpa(), each reproducible from its seed.
//
//   deno test --allow-ffi --allow-read --allow-write=/tmp,tests/regressions \
//     --allow-env tests/stress/fuzz_stress.ts
//
// ISOLA_FUZZ_SEED=<n> changes the seeds (frames: n, IPA: n + 1);
// ISOLA_FUZZ_COUNT=<n> the number of inputs of each run. Failing inputs are
// saved into tests/regressions/ (see its README.md).
import { assertEquals } from "@std/assert";
import { withoutFdLeak } from "../_helpers.ts";
import {
  formatCounts,
  type FuzzCounts,
  fuzzFrames,
  fuzzIpaDecode,
  saveCases,
} from "./fuzz.ts";

const SEED = Number(Deno.env.get("ISOLA_FUZZ_SEED") ?? 0x15017);
const COUNT = Number(Deno.env.get("ISOLA_FUZZ_COUNT") ?? 100_000);
const label = COUNT.toLocaleString("en-US");

function report(title: string, seed: number, run: () => FuzzCounts): void {
  const start = performance.now();
  const counts = run();
  console.log(
    `${
      formatCounts(title, counts, performance.now() - start)
    }\n  seed: ${seed}`,
  );
  if (counts.failures.length > 0) {
    try {
      console.log("saved:", saveCases(counts.failures).join("\n  "));
    } catch (e) {
      console.log(`cases not saved (${e}):`, JSON.stringify(counts.failures));
    }
  }
  assertEquals(
    counts.failures.map((c) => `#${c.index}: ${c.description}`),
    [],
    "fuzz failures",
  );
}

Deno.test(`fuzz: ${label} frames into IpcUnixSocket.receive()`, async () => {
  await withoutFdLeak(() =>
    report("frames", SEED, () => fuzzFrames(COUNT, SEED))
  );
});

Deno.test(`fuzz: ${label} mutated IPA encodings into decodeIpa()`, async () => {
  await withoutFdLeak(() =>
    report("ipa", SEED + 1, () => fuzzIpaDecode(COUNT, SEED + 1))
  );
});
