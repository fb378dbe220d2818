// The contenders of the cadence benchmark (bench/cadence.ts) and of its
// back-to-back `deno bench` (bench/cadence_bench.ts): each makes one sync
// call of 64 bytes each way, through isola or a baseline.
import {
  IpaProxyIsolated,
  type IpaProxyOf,
  IpcPipeUnixSocket,
  Process,
} from "../mod.ts";
import { SOCK, socketpair } from "../ffi/socket.ts";
import { close } from "../ffi/unistd.ts";
import { CadenceIpa } from "./_cadence_ipa.ts";

/** Bytes of each request and reply. */
export const MSG_SIZE = 64;
const CALL_TIMEOUT_MS = 2000;

/** How calls are paced: `pipes` pipes, each called every `periodUs`. */
export interface Regime {
  name: string;
  pipes: number;
  periodUs: number;
  calls: number;
}

/** One contender: a call on pipe `i`, paced runs, and closing. */
export interface Contender {
  name: string;
  /** One call on pipe `pipe` (undefined for the C pair: a subprocess). */
  call?: (pipe: number) => void;
  /** Runs the regime, returns the round trips in µs. */
  run(regime: Regime): Promise<number[]>;
  close(): Promise<void>;
}

export const here = (p: string): string => new URL(p, import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Compiles `src` (in bench/) with gcc -O2 into `out`. */
export async function compile(src: string, out: string): Promise<string> {
  const { success, stderr } = await new Deno.Command("gcc", {
    args: ["-O2", "-o", out, here(src)],
    stderr: "piped",
  }).output();
  if (!success) throw new Error(new TextDecoder().decode(stderr));
  return out;
}

/** Paces `call(i)` as the regime says and times each call. */
export async function paced(
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

/** The C pair, a binary made by {@linkcode compile}. */
export function cPair(binary: string): Contender {
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

/** The minimal Deno FFI pair: `pipes` echo children. */
export function ffiPair(pipes: number): Contender {
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
  const call = (p: number) => {
    libc.symbols.send(fds[p], buf, size, MSG_NOSIGNAL);
    libc.symbols.recv(fds[p], buf, size, 0);
  };
  return {
    name: "Deno FFI pair",
    call,
    run: (r) => paced(r, call),
    async close() {
      for (const fd of fds) close(fd);
      for (const c of children) await c.exited;
      libc.close();
    },
  };
}

/** isola sendSync() to `pipes` workers serving in `mode`. */
export function pipePair(
  name: string,
  pipes: number,
  mode: "blocking" | "serve",
  spin?: number,
  keepWarm?: boolean,
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
        keepWarm,
        timeout: CALL_TIMEOUT_MS,
      }),
    );
  }
  const data = new Uint8Array(MSG_SIZE);
  const call = (p: number) => {
    using _reply = list[p].sendSync({ cmd: 1, data });
  };
  return {
    name,
    call,
    run: (r) => paced(r, call),
    async close() {
      for (const p of list) await p.close();
    },
  };
}

/** isola's isolated IPA proxy, `pipes` of them. */
export async function ipaPair(pipes: number): Promise<Contender> {
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
  const call = (p: number) => {
    list[p].processStats({ frame: frame++, stats });
  };
  return {
    name: "IPA isolated",
    call,
    run: (r) => paced(r, call),
    async close() {
      for (const p of list) await p.close();
    },
  };
}
