// A worker floods events at the owner, whose listener works 20 µs per
// event: throughput, and how late the owner's 10 ms timer ticks are while
// it lasts. IpcPipeUnixSocket with its receive window (flow control, the
// default) against the same pipe without one and against Worker
// postMessage (baselines in the same group). Timer lag and RSS are printed
// at the end; run with `deno task bench bench/flood_bench.ts`.
import { IpcPipeUnixSocket } from "../mod.ts";

const EVENTS = 20_000;
const LISTENER_US = 20;
const TICK_MS = 10;
const here = (p: string) => new URL(p, import.meta.url).pathname;

/** Works `us` microseconds, as a listener doing real work would. */
function work(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) { /* busy */ }
}

/** Worst lateness of a TICK_MS timer chain while `run` lasts, ms. */
async function timerLag(run: () => Promise<void>): Promise<number> {
  let worst = 0;
  let stop = false;
  let expected = performance.now() + TICK_MS;
  const tick = () => {
    const now = performance.now();
    worst = Math.max(worst, now - expected);
    expected = now + TICK_MS;
    if (!stop) timer = setTimeout(tick, TICK_MS);
  };
  let timer = setTimeout(tick, TICK_MS);
  try {
    await run();
  } finally {
    stop = true;
    clearTimeout(timer);
  }
  // A timer that never fired during the run was late by all of it.
  return Math.max(worst, performance.now() - expected);
}

interface Case {
  name: string;
  flood(): Promise<void>;
  lags: number[];
  rssPeak: number;
}

function pipeCase(name: string, receiveWindow: number): Case {
  const pipe = new IpcPipeUnixSocket(Deno.execPath(), {
    args: ["run", "--allow-ffi", "--allow-read", here("./_flood_worker.ts")],
    receiveWindow,
    timeout: 30_000,
  });
  let seen = 0;
  let done: (() => void) | undefined;
  pipe.addEventListener("recv", (e) => {
    e.message[Symbol.dispose]();
    if (e.message.cmd === 101) return done?.();
    seen++;
    work(LISTENER_US);
  });
  const n = new Uint8Array(new Uint32Array([EVENTS]).buffer);
  const c: Case = {
    name,
    lags: [],
    rssPeak: 0,
    async flood() {
      const finished = new Promise<void>((r) => done = r);
      const start = seen;
      pipe.sendAsync({ cmd: 1, data: n });
      c.lags.push(await timerLag(() => finished));
      c.rssPeak = Math.max(c.rssPeak, Deno.memoryUsage().rss);
      if (seen - start !== EVENTS) throw new Error(`${seen - start} events`);
    },
  };
  closers.push(() => pipe.close({ grace: 100 }));
  return c;
}

function postCase(): Case {
  const w = new Worker(
    new URL("./_post_flood_worker.ts", import.meta.url).href,
    { type: "module" },
  );
  let seen = 0;
  let done: (() => void) | undefined;
  w.onmessage = (e) => {
    if (e.data === "done") return done?.();
    seen++;
    work(LISTENER_US);
  };
  const c: Case = {
    name: "Worker postMessage",
    lags: [],
    rssPeak: 0,
    async flood() {
      const finished = new Promise<void>((r) => done = r);
      const start = seen;
      w.postMessage(EVENTS);
      c.lags.push(await timerLag(() => finished));
      c.rssPeak = Math.max(c.rssPeak, Deno.memoryUsage().rss);
      if (seen - start !== EVENTS) throw new Error(`${seen - start} events`);
    },
  };
  closers.push(() => w.terminate());
  return c;
}

const closers: (() => unknown)[] = [];
const idleLag = await timerLag(() => new Promise((r) => setTimeout(r, 500)));
const cases = [
  pipeCase("IpcPipeUnixSocket, receive window 64 (default)", 64),
  pipeCase("IpcPipeUnixSocket, no flow control", Infinity),
  postCase(),
];
await Promise.all(cases.map((c) => c.flood())); // started and warm

const group = `flood of ${EVENTS} events, ${LISTENER_US} µs listener`;
for (const [i, c] of cases.entries()) {
  Deno.bench({
    name: c.name,
    group,
    baseline: i === 1,
    n: 5,
    warmup: 1,
    async fn() {
      await c.flood();
    },
  });
}

globalThis.addEventListener("unload", () => {
  const mb = (b: number) => `${(b / (1 << 20)).toFixed(0)} MiB`;
  console.log(
    `\n${TICK_MS} ms timer, worst lateness (idle: ${idleLag.toFixed(1)} ms):`,
  );
  for (const c of cases) {
    const lags = c.lags.slice(1); // the first ran while starting
    console.log(
      `  ${c.name}: ${Math.max(...lags).toFixed(1)} ms ` +
        `(median of floods ${
          [...lags].sort((a, b) => a - b)[lags.length >> 1].toFixed(1)
        } ms); ` +
        `RSS peak ${mb(c.rssPeak)}`,
    );
  }
  for (const close of closers) close();
});
