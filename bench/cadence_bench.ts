// Sync calls at frame cadence: the figure a camera user sees. A camera
// makes one sync call per frame, 33 ms apart, and between two calls the
// process sleeps; after such an idle gap every page a call touches costs a
// page walk, so a path that touches little wins (docs/performance.md).
//
// One interleaved run: for each round, each regime, each contender in
// turn, so the machine's noise falls on all of them alike. Contenders:
//   C pair          two processes, blocking recv(2) (gcc, built now)
//   Deno FFI pair   a Deno echo child, the parent's send/recv by FFI
//   serveBlocking   isola sendSync -> IpcPipeWorker.serveBlocking()
//   serve()         isola sendSync -> IpcPipeWorker.serve() (event loop)
//   IPA isolated    isola IpaProxyIsolated, a sync method, 64 B each way
// Regimes: back to back, 30 fps, 4 pipes x 30 fps (a call every 8.3 ms
// rotating over 4 pipes), then the same with a CPU hog on every core,
// spinning on (the default, adaptive) and off.
//
//   deno task bench:cadence [--quick] [--json PATH]
//
// `deno bench` cannot pace calls 33 ms apart, hence a script. It
// prints a table (p50 and p99 in µs, the range of the per-round medians,
// and ratios to the Deno FFI pair) and, with --json, writes the samples'
// summary for tools/bench_report.ts.
import { parseArgs } from "@std/cli/parse-args";
import {
  IpaProxyIsolated,
  type IpaProxyOf,
  IpcPipeUnixSocket,
  Process,
} from "../mod.ts";
import { SOCK, socketpair } from "../ffi/socket.ts";
import { close } from "../ffi/unistd.ts";
import { CadenceIpa } from "./_cadence_ipa.ts";

const args = parseArgs(Deno.args, {
  boolean: ["quick"],
  string: ["json"],
});
const QUICK = args.quick;
/** Rounds of every regime and contender. */
const ROUNDS = QUICK ? 2 : 4;
/** Frame period of one camera: 30 fps. */
const FRAME_US = 33_333;
/** Pipes of the "4 cameras" regime. */
const MULTI_PIPES = 4;
const REGIMES: readonly Regime[] = [
  { name: "back to back", pipes: 1, periodUs: 0, calls: QUICK ? 500 : 2000 },
  { name: "30 fps", pipes: 1, periodUs: FRAME_US, calls: QUICK ? 30 : 60 },
  {
    name: "4 x 30 fps",
    pipes: MULTI_PIPES,
    periodUs: FRAME_US,
    calls: QUICK ? 120 : 240,
  },
];
/** Bytes of each request and reply. */
const MSG_SIZE = 64;
const CALL_TIMEOUT_MS = 2000;

interface Regime {
  name: string;
  pipes: number;
  periodUs: number;
  calls: number;
}

interface Contender {
  name: string;
  /** Runs the regime, returns the round trips in µs. */
  run(regime: Regime): Promise<number[]>;
  close(): Promise<void>;
}

const here = (p: string) => new URL(p, import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function compile(src: string, out: string): Promise<string> {
  const { success, stderr } = await new Deno.Command("gcc", {
    args: ["-O2", "-o", out, here(src)],
    stderr: "piped",
  }).output();
  if (!success) throw new Error(new TextDecoder().decode(stderr));
  return out;
}

/** Paces `call(i)` as the regime says and times each call. */
async function paced(
  regime: Regime,
  call: (pipe: number) => void,
): Promise<number[]> {
  const out: number[] = [];
  const stepMs = regime.periodUs / 1000 / regime.pipes;
  let next = performance.now();
  for (let i = 0; i < regime.calls; i++) {
    if (stepMs > 0) {
      next += stepMs;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const t0 = performance.now();
    call(i % regime.pipes);
    out.push((performance.now() - t0) * 1000);
  }
  return out;
}

function cPair(binary: string): Contender {
  return {
    name: "C pair",
    async run(r) {
      const { stdout, success } = await new Deno.Command(binary, {
        args: [String(r.pipes), String(r.periodUs), String(r.calls)],
      }).output();
      if (!success) throw new Error("C pair failed");
      return new TextDecoder().decode(stdout).trim().split("\n").map(Number);
    },
    async close() {},
  };
}

function ffiPair(pipes: number): Contender {
  const libc = Deno.dlopen("libc.so.6", {
    recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
    send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  });
  const MSG_NOSIGNAL = 0x4000;
  const fds: number[] = [];
  const children: Process[] = [];
  for (let i = 0; i < pipes; i++) {
    const sv = socketpair(
      SOCK.AF_UNIX,
      SOCK.SOCK_SEQPACKET | SOCK.SOCK_CLOEXEC,
    );
    if (typeof sv === "number") throw new Error(`socketpair: ${sv}`);
    children.push(
      Process.spawn(Deno.execPath(), {
        args: ["run", "--allow-ffi", here("_cadence_ffi_echo.ts"), `${sv[1]}`],
        keepFds: [sv[1]],
      }),
    );
    close(sv[1]);
    fds.push(sv[0]);
  }
  const buf = new Uint8Array(MSG_SIZE);
  const size = BigInt(MSG_SIZE);
  return {
    name: "Deno FFI pair",
    run: (r) =>
      paced(r, (p) => {
        libc.symbols.send(fds[p], buf, size, MSG_NOSIGNAL);
        libc.symbols.recv(fds[p], buf, size, 0);
      }),
    async close() {
      for (const fd of fds) close(fd);
      for (const c of children) await c.exited;
      libc.close();
    },
  };
}

function pipePair(
  name: string,
  pipes: number,
  mode: "blocking" | "serve",
  spin?: number,
): Contender {
  const list: IpcPipeUnixSocket[] = [];
  for (let i = 0; i < pipes; i++) {
    list.push(
      new IpcPipeUnixSocket(Deno.execPath(), {
        args: [
          "run",
          "--allow-ffi",
          "--allow-read",
          "--allow-env",
          here("_cadence_worker.ts"),
          mode,
          spin === undefined ? "default" : String(spin),
        ],
        spin,
        timeout: CALL_TIMEOUT_MS,
      }),
    );
  }
  const data = new Uint8Array(MSG_SIZE);
  return {
    name,
    run: (r) =>
      paced(r, (p) => {
        using _reply = list[p].sendSync({ cmd: 1, data });
      }),
    async close() {
      for (const p of list) await p.close();
    },
  };
}

async function ipaPair(pipes: number): Promise<Contender> {
  const list: IpaProxyOf<typeof CadenceIpa>[] = [];
  for (let i = 0; i < pipes; i++) {
    const ipa = await IpaProxyIsolated.create(
      CadenceIpa,
      here("_cadence_ipa.ts"),
      { timeout: CALL_TIMEOUT_MS },
    );
    list.push(ipa);
  }
  const stats = new Uint8Array(MSG_SIZE - 8);
  let frame = 0;
  return {
    name: "IPA isolated",
    run: (r) =>
      paced(r, (p) => {
        list[p].processStats({ frame: frame++, stats });
      }),
    async close() {
      for (const p of list) await p.close();
    },
  };
}

/** Nearest-rank percentile. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

interface Row {
  section: string;
  regime: string;
  contender: string;
  samples: number;
  p50: number;
  p99: number;
  roundP50Min: number;
  roundP50Max: number;
}

async function measure(
  section: string,
  contenders: Contender[],
  regimes: readonly Regime[],
): Promise<Row[]> {
  const samples = new Map<string, number[][]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const regime of regimes) {
      for (const c of contenders) {
        const key = `${regime.name}\0${c.name}`;
        const s = await c.run(regime);
        const list = samples.get(key) ?? [];
        list.push(s);
        samples.set(key, list);
      }
    }
  }
  const rows: Row[] = [];
  for (const regime of regimes) {
    for (const c of contenders) {
      const rounds = samples.get(`${regime.name}\0${c.name}`)!;
      const all = rounds.flat().sort((a, b) => a - b);
      const medians = rounds.map((r) =>
        percentile([...r].sort((a, b) => a - b), 50)
      );
      rows.push({
        section,
        regime: regime.name,
        contender: c.name,
        samples: all.length,
        p50: percentile(all, 50),
        p99: percentile(all, 99),
        roundP50Min: Math.min(...medians),
        roundP50Max: Math.max(...medians),
      });
    }
  }
  return rows;
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function printTable(rows: Row[], baseline: string): void {
  console.log(
    "| section | regime | contender | p50 µs (round range) | p99 µs | p50 / FFI pair | p99 / FFI pair |",
  );
  console.log("|---|---|---|---:|---:|---:|---:|");
  for (const r of rows) {
    const base = rows.find((b) =>
      b.section === r.section && b.regime === r.regime &&
      b.contender === baseline
    );
    const ratio = (a: number, b?: number) =>
      b === undefined ? "" : (a / b).toFixed(2);
    console.log(
      `| ${r.section} | ${r.regime} | ${r.contender} | ${fmt(r.p50)} (${
        fmt(r.roundP50Min)
      }–${fmt(r.roundP50Max)}) | ${fmt(r.p99)} | ${ratio(r.p50, base?.p50)} | ${
        ratio(r.p99, base?.p99)
      } |`,
    );
  }
}

const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola-cadence-" });
const cBinary = await compile("_cadence_pair.c", `${dir}/cadence_pair`);
const hogBinary = await compile("_cadence_hog.c", `${dir}/cadence_hog`);

const contenders: Contender[] = [
  cPair(cBinary),
  ffiPair(MULTI_PIPES),
  pipePair("serveBlocking", MULTI_PIPES, "blocking"),
  pipePair("serve()", MULTI_PIPES, "serve"),
  await ipaPair(MULTI_PIPES),
];
const rows = await measure("idle", contenders, REGIMES);

// Under load: a hog on every core, spinning on (adaptive) vs off.
const loadContenders: Contender[] = [
  cPair(cBinary),
  contenders[1],
  pipePair("serveBlocking, spin off", 1, "blocking", 0),
  contenders[2],
  contenders[4],
];
const hogs = Array.from(
  { length: navigator.hardwareConcurrency },
  () => new Deno.Command(hogBinary, { stdout: "null" }).spawn(),
);
let loadRows: Row[];
try {
  loadRows = await measure(
    "under load",
    loadContenders,
    REGIMES.slice(0, 2),
  );
} finally {
  for (const h of hogs) {
    h.kill("SIGKILL");
    await h.status;
  }
}
await loadContenders[2].close();
for (const c of contenders) await c.close();
await Deno.remove(dir, { recursive: true });

const all = [...rows, ...loadRows];
printTable(all, "Deno FFI pair");
if (args.json) {
  await Deno.writeTextFile(
    args.json,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        quick: QUICK,
        rounds: ROUNDS,
        rows: all,
      },
      null,
      2,
    ),
  );
}
