// A worker floods events at the owner, whose listener works 20 µs per
// event: throughput, and how late the owner's 10 ms timer ticks are while
// it lasts. IpcPipeUnixSocket with receive windows (flow control) against
// the same pipe without one and against Worker postMessage (baselines in
// the same group). Timer lag and RSS are printed at the end; run with
// `deno task bench bench/flood_bench.ts`.
import { IpcPipeUnixSocket } from "../mod.ts";

const EVENTS = 50_000;
const LISTENER_US = 20;
const TICK_MS = 10;
const here = (p: string) => new URL(p, import.meta.url).pathname;

/** Works `us` microseconds, as a listener doing real work would. */
function work(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) { /* busy */ }
}

/** Highest RSS seen by timerLag()'s ticks, bytes. */
let rssSeen = 0;

/** Worst lateness of a TICK_MS timer chain while `run` lasts, ms. */
async function timerLag(run: () => Promise<void>): Promise<number> {
  let worst = 0;
  let stop = false;
  let expected = performance.now() + TICK_MS;
  const tick = () => {
    const now = performance.now();
    rssSeen = Math.max(rssSeen, Deno.memoryUsage().rss);
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
  /** RSS growth during its floods over the RSS before its first, bytes. */
  rssGrowth: number;
}

/** Runs one flood of case `c`, recording its timer lag and RSS. */
async function measure(c: Case, run: () => Promise<void>): Promise<void> {
  const before = Deno.memoryUsage().rss;
  rssSeen = before;
  c.lags.push(await timerLag(run));
  rssSeen = Math.max(rssSeen, Deno.memoryUsage().rss);
  c.rssGrowth = Math.max(c.rssGrowth, rssSeen - before);
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
    rssGrowth: 0,
    async flood() {
      const finished = new Promise<void>((r) => done = r);
      const start = seen;
      pipe.sendAsync({ cmd: 1, data: n });
      await measure(c, () => finished);
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
    rssGrowth: 0,
    async flood() {
      const finished = new Promise<void>((r) => done = r);
      const start = seen;
      w.postMessage(EVENTS);
      await measure(c, () => finished);
      if (seen - start !== EVENTS) throw new Error(`${seen - start} events`);
    },
  };
  closers.push(() => w.terminate());
  return c;
}

const closers: (() => unknown)[] = [];
const idleLag = await timerLag(() => new Promise((r) => setTimeout(r, 500)));
const cases = [
  pipeCase("IpcPipeUnixSocket, receive window 128 (default)", 128),
  pipeCase("IpcPipeUnixSocket, receive window 64", 64),
  pipeCase("IpcPipeUnixSocket, receive window 512", 512),
  pipeCase("IpcPipeUnixSocket, no flow control", Infinity),
  postCase(),
];
for (const c of cases) await c.flood(); // started and warm
for (const c of cases) c.lags.length = 0;

const group = `flood of ${EVENTS} events, ${LISTENER_US} µs listener`;
for (const [i, c] of cases.entries()) {
  Deno.bench({
    name: c.name,
    group,
    baseline: i === 3,
    n: 5,
    warmup: 1,
    async fn() {
      await c.flood();
    },
  });
}

globalThis.addEventListener("unload", () => {
  // On stderr: `deno bench --json` keeps stdout for its JSON.
  const mb = (b: number) => `${(b / (1 << 20)).toFixed(1)} MiB`;
  console.error(
    `\n${TICK_MS} ms timer, worst lateness (idle: ${idleLag.toFixed(1)} ms):`,
  );
  for (const c of cases) {
    const lags = c.lags;
    console.error(
      `  ${c.name}: ${Math.max(...lags).toFixed(1)} ms ` +
        `(median of floods ${
          [...lags].sort((a, b) => a - b)[lags.length >> 1].toFixed(1)
        } ms); ` +
        `RSS +${mb(c.rssGrowth)}`,
    );
  }
  for (const close of closers) close();
});
