// A light subset of the fault and load campaign (tests/stress/) for
// `deno task test`: the same scenarios, small counts. The full runs are in
// tests/stress/faults_stress.ts and tests/stress/load_stress.ts.
import { assert, assertEquals, assertLess } from "@std/assert";
import {
  backPressure,
  FAULT_KILLER,
  isSendTimeout,
  killDuringTraffic,
  median,
  parentKilled,
  procExists,
  RECEIVER,
  stressSeed,
  syncLoad,
} from "../fixtures/fault_scenarios.ts";
import {
  assertNoFdLeak,
  fdSnapshot,
  test,
  warmUpWorkers,
} from "../_helpers.ts";

const SEED = stressSeed(7);

const ms = (x: number) => `${x.toFixed(1)} ms`;

Deno.test("`IpcPipeUnixSocket` fails every pending call with the SIGKILL report, over 20 killed workers (8 at a time)", async () => {
  await warmUpWorkers(RECEIVER);
  await warmUpWorkers(FAULT_KILLER);
  const before = fdSnapshot();
  const s = await killDuringTraffic(20, 8, SEED);
  await assertNoFdLeak(before);
  assertEquals(s.problems, []);
  assertEquals(s.iterations, 20);
  assertEquals(s.syncFailed, 20);
  for (const pid of s.pids) assert(!procExists(pid), `worker ${pid} left`);
  const max = Math.max(...s.latencies);
  console.log(
    `20 kills (${s.timerKills} timer, ${s.syncKills} in sendSync): ` +
      `${s.latencies.length} failed calls, time to failure median ` +
      `${ms(median(s.latencies))}, max ${ms(max)}; ${s.events} events`,
  );
});

Deno.test("`IpcPipeUnixSocket.sendAsync()` to a worker that stops reading ends with a send timeout, memory bounded", async () => {
  await warmUpWorkers(RECEIVER);
  const before = fdSnapshot();
  const s = await backPressure(4096);
  await assertNoFdLeak(before);
  assert(isSendTimeout(s.error), `${s.error}`);
  assert(s.sent > 0 && s.sent < 10_000, `${s.sent} messages accepted`);
  // The heap may keep one encoded copy per accepted message as garbage.
  assertLess(s.rssAfter - s.rssBefore, (32 << 20) + s.sent * 4104);
});

test.userns("`Process` isolation: the isolated children and pipe worker of a SIGKILLed parent are gone", async () => {
  const before = fdSnapshot();
  const s = await parentKilled(3);
  await assertNoFdLeak(before);
  assertEquals(s.alive, []);
});

Deno.test("`IpcPipeUnixSocket.sendSync()`: 20,000 calls over 4 streaming blocking workers, no reply lost or misrouted", async () => {
  await warmUpWorkers(RECEIVER);
  const before = fdSnapshot();
  const s = await syncLoad(20_000, 4, SEED);
  await assertNoFdLeak(before);
  assertEquals(s.misrouted, 0);
  assertEquals(s.eventGaps, 0);
  assert(s.events > 0, "no events");
  console.log(
    `20,000 sync calls over 4 pipes: ${s.usPerCall.toFixed(1)} µs/call, ` +
      `${s.events} events`,
  );
});
