// The cadence warmer with real timers: what it warms, when it stops. Every
// test ends with no timer armed (the test sanitizer fails on one left).
import { assert, assertEquals } from "@std/assert";
import {
  CadenceWarmer,
  WARM_MAX_PERIOD_MS,
  WARM_MIN_PERIOD_MS,
} from "../../src/pipe/_cadence_warmer.ts";
import { IpcPeerGoneError, IpcTimeoutError } from "../../mod.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PERIOD_MS = 30;

/** Makes `calls` calls every `periodMs` (each noted), logging the order. */
async function paced(
  w: CadenceWarmer,
  log: string[],
  calls: number,
  periodMs = PERIOD_MS,
): Promise<void> {
  for (let i = 0; i < calls; i++) {
    if (i > 0) await sleep(periodMs);
    w.note(performance.now());
    log.push("call");
  }
}

Deno.test("CadenceWarmer makes one warm call before each call of a steady cadence, and goes quiet when the calls stop", async () => {
  const log: string[] = [];
  const w = new CadenceWarmer(() => {
    log.push("warm");
  });
  await paced(w, log, 12);
  // Learnt from the first gap; then one warm call in every gap (a timer
  // that fires late on a loaded machine may miss one, never add one).
  assert(Math.abs(w.period - PERIOD_MS) < PERIOD_MS / 4, `${w.period}`);
  const gaps = log.join(" ").split("call").slice(1, -1).map((g) => g.trim());
  assert(gaps.every((g) => g === "" || g === "warm"), log.join(" "));
  assert(w.warmCalls >= 5 && w.warmCalls <= 11, `${w.warmCalls}`);
  // The calls stop: at most the one warm call already due, then nothing
  // (and no timer left, which the sanitizer checks when the test ends).
  const before = w.warmCalls;
  const fired = w.fires;
  await sleep(5 * PERIOD_MS);
  assert(w.warmCalls - before <= 1);
  // About a timer per period until quiet: 4 here, a few more where a
  // loaded machine makes the timers late; a timer armed to fire at once,
  // again and again, fired 18 times.
  assert(w.fires - fired <= 8, `${w.fires - fired}`);
  const quiet = w.warmCalls;
  await sleep(3 * PERIOD_MS);
  assertEquals(w.warmCalls, quiet);
  assertEquals(w.period, 0);
  w.close();
});

Deno.test("CadenceWarmer warms nothing for gaps outside its range, and a burst within a frame keeps the cadence and the kind of its last call", async () => {
  const log: string[] = [];
  const w = new CadenceWarmer((kind) => {
    log.push(`warm ${kind}`);
  });
  // Back to back: too close to pay.
  for (let i = 0; i < 50; i++) w.note(performance.now());
  assertEquals(w.period, 0);
  await paced(w, log, 4, WARM_MIN_PERIOD_MS / 4);
  assertEquals(w.period, 0);
  // A gap past the longest: no cadence (and no timer armed).
  const t = performance.now();
  w.note(t);
  w.note(t + WARM_MAX_PERIOD_MS + 1);
  assertEquals(w.period, 0);
  // Two calls per frame: the short gap inside the frame is ignored, and
  // the warm call is of the kind of the frame's last call.
  for (let i = 0; i < 6; i++) {
    if (i > 0) await sleep(PERIOD_MS);
    w.note(performance.now(), 0);
    w.note(performance.now(), 1);
  }
  assert(w.period > WARM_MIN_PERIOD_MS, `${w.period}`);
  assert(w.warmCalls >= 1, `${w.warmCalls}`);
  w.close();
  assertEquals(log.filter((e) => e === "warm 1").length, w.warmCalls);
});

Deno.test("CadenceWarmer backs off after a warm call that timed out, and close() disarms it", async () => {
  let tries = 0;
  const w = new CadenceWarmer(() => {
    tries++;
    throw new IpcTimeoutError("Cannot call warm-up: no reply within 3 ms", 3);
  });
  await paced(w, [], 14);
  // One try, then 16 frames without: 14 calls leave room for one only.
  assertEquals(tries, 1);
  assertEquals(w.warmCalls, 1);
  w.close();
  w.close(); // idempotent
  // Closed: notes arm nothing (the sanitizer would see a timer).
  w.note(performance.now());
  w.note(performance.now() + PERIOD_MS);
  await sleep(2 * PERIOD_MS);
  assertEquals(tries, 1);
});

Deno.test("CadenceWarmer ends, arming no timer, once a warm call failed otherwise (the pipe is gone)", async () => {
  const w = new CadenceWarmer(() => {
    throw new IpcPeerGoneError("Cannot call warm-up", null);
  });
  await paced(w, [], 4);
  await sleep(3 * PERIOD_MS);
  assertEquals(w.warmCalls, 1);
  assertEquals(w.fires, 1); // the warm call's, and none after
});
