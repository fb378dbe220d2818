// A short run of the fuzzers of tests/stress/fuzz.ts inside the regular
// test task (the full runs: tests/stress/fuzz_stress.ts).
import { assertEquals, assertGreater } from "@std/assert";
import { createMemfd } from "../../mod.ts";
import {
  FrameRig,
  fuzzFrames,
  fuzzIpaDecode,
  replayCase,
  saveCases,
  type SavedCase,
  toBase64,
} from "../stress/fuzz.ts";
import { withoutFdLeak } from "../_helpers.ts";

function failures(cases: readonly SavedCase[]): string[] {
  return cases.map((c) => `${c.kind} #${c.index}: ${c.description}`);
}

Deno.test("fuzz: 2,000 frames into IpcUnixSocket.receive() are messages or IpcProtocolErrors", async () => {
  await withoutFdLeak(() => {
    const c = fuzzFrames(2000, 0x11a, { segment: 500, hangUpEvery: 100 });
    assertEquals(failures(c.failures), []);
    assertGreater(c.accepted, 0);
    assertGreater(c.hangUps!, 10);
    for (
      const reason of [
        "bad-version",
        "fd-count-mismatch",
        "short-header",
        "length-mismatch",
        "too-large",
        "fds-truncated",
      ]
    ) {
      assertGreater(c.rejectedByReason[reason] ?? 0, 0, `no ${reason}`);
    }
  });
});

Deno.test("fuzz: 2,000 mutated IPA encodings into decodeIpa() are values or IpaDecodeErrors", async () => {
  await withoutFdLeak(() => {
    const c = fuzzIpaDecode(2000, 0x11b);
    assertEquals(failures(c.failures), []);
    assertGreater(c.accepted, 0);
    for (const reason of ["truncated", "trailing-bytes", "bad-fd-index"]) {
      assertGreater(c.rejectedByReason[reason] ?? 0, 0, `no ${reason}`);
    }
  });
});

Deno.test("fuzz: the frame checker sees a descriptor left open", async () => {
  await withoutFdLeak(() => {
    using rig = new FrameRig({}, ["memfd"]);
    assertEquals(rig.fdDrift(1), []);
    using extra = createMemfd();
    const drift = rig.fdDrift(1);
    assertEquals(drift, [`fd ${extra.fd} left open`]);
  });
});

Deno.test("fuzz: saveCases() writes cases that replayCase() replays", async () => {
  await withoutFdLeak(() => {
    const dir = Deno.makeTempDirSync({ prefix: "isola_fuzz_" });
    try {
      const cases: SavedCase[] = [
        {
          kind: "frame",
          seed: 1,
          index: 0,
          bytes: toBase64(Uint8Array.of(1, 2, 3)),
          fdCount: 1,
          fdKinds: ["pipe-read"],
          description: "short record",
        },
        {
          kind: "ipa",
          seed: 1,
          index: 1,
          bytes: toBase64(Uint8Array.of(0, 0, 0, 0)),
          fdCount: 1,
          ipaType: "camera.processStats.params",
          description: "frame 0, stats truncated",
        },
      ];
      const paths = saveCases(cases, dir);
      assertEquals(paths.length, 2);
      const back = paths.map((p) => JSON.parse(Deno.readTextFileSync(p)));
      assertEquals(back, cases);
      assertEquals(replayCase(back[0]), { ok: true, outcome: "short-header" });
      assertEquals(replayCase(back[1]), { ok: true, outcome: "truncated" });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
});
