import { assert, assertEquals } from "@std/assert";
import { AdaptiveSpin } from "../../src/pipe/_adaptive_spin.ts";

Deno.test("`AdaptiveSpin` keeps spinning while replies come inside the window", () => {
  const s = new AdaptiveSpin(50, 2);
  for (let i = 0; i < 100; i++) {
    assertEquals(s.next(), 50);
    s.record(50, true);
  }
  assert(s.spinning);
});

Deno.test("`AdaptiveSpin` stops when replies come after the window, then probes less and less often", () => {
  const s = new AdaptiveSpin(50, 2);
  let spins = 0;
  for (let i = 0; i < 40; i++) {
    const w = s.next();
    if (w > 0) spins++;
    s.record(w, false);
  }
  assert(!s.spinning);
  assert(spins < 20, `spun ${spins} of 40 waits`);
  // Probe gaps double while probes keep missing.
  const gaps: number[] = [];
  let since = 0;
  for (let i = 0; i < 2000; i++) {
    const w = s.next();
    since++;
    if (w > 0) {
      gaps.push(since);
      since = 0;
    }
    s.record(w, false);
  }
  assert(gaps.length >= 3, `probes ${gaps}`);
  for (let i = 1; i < gaps.length; i++) {
    assert(gaps[i] >= gaps[i - 1], `gaps ${gaps}`);
  }
});

Deno.test("`AdaptiveSpin` spins again at once when a probe catches the reply", () => {
  const s = new AdaptiveSpin(50, 2);
  for (let i = 0; i < 40; i++) s.record(s.next(), false);
  let w = 0;
  while ((w = s.next()) === 0) {
    // waits without spinning until the probe
  }
  s.record(w, true);
  assert(s.spinning);
  assertEquals(s.next(), 50);
});

Deno.test("`AdaptiveSpin` never spins on one CPU or with a window of 0", () => {
  for (const s of [new AdaptiveSpin(50, 1), new AdaptiveSpin(0, 8)]) {
    for (let i = 0; i < 100; i++) {
      assertEquals(s.next(), 0);
      s.record(0, false);
    }
    assert(!s.spinning);
  }
});
