// IpcPipeUnixSocket between this thread and an isolated child process,
// against Worker postMessage and a Deno.Command child echoing lines over
// stdin/stdout (baselines in the same groups). Run with `deno task bench`.
import { fromFileUrl } from "@std/path";
import { createMemfd, IpcPipeUnixSocket } from "../mod.ts";

const here = (p: string) => fromFileUrl(new URL(p, import.meta.url));
const deno = Deno.execPath();

function pipeTo(blocking: boolean): IpcPipeUnixSocket {
  return new IpcPipeUnixSocket(deno, {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read",
      here("./_pipe_echo_worker.ts"),
      ...(blocking ? ["--blocking"] : []),
    ],
    isolate: true,
    timeout: 10_000,
  });
}

const blockingPipe = pipeTo(true);
const loopPipe = pipeTo(false);
blockingPipe.sendSync({ cmd: 1 }); // wait until both run
loopPipe.sendSync({ cmd: 1 });

// Baseline 1: a Worker echoing postMessage.
const postWorker = new Worker(
  new URL("./_post_echo_worker.ts", import.meta.url).href,
  { type: "module" },
);
let pending: ((v: unknown) => void) | undefined;
postWorker.onmessage = (e) => pending?.(e.data);
const postRoundTrip = (data: Uint8Array) =>
  new Promise((resolve) => {
    pending = resolve;
    postWorker.postMessage(data);
  });

// Baseline 2: a Deno child echoing lines over pipes.
const child = new Deno.Command(deno, {
  args: ["run", here("./_line_echo.ts")],
  stdin: "piped",
  stdout: "piped",
  stderr: "null",
}).spawn();
const writer = child.stdin.getWriter();
const reader = child.stdout.getReader();
async function lineRoundTrip(line: Uint8Array): Promise<void> {
  await writer.write(line);
  let got = 0;
  while (got < line.length) {
    const r = await reader.read();
    if (r.done) throw new Error("echo child ended");
    got += r.value.length;
  }
}

const line64 = new Uint8Array(64).fill(0x61);
line64[63] = 0x0a;
await lineRoundTrip(line64); // started

const d64 = new Uint8Array(64);
const d64k = new Uint8Array(64 * 1024);
const memfd = createMemfd({ name: "bench", data: d64 });

Deno.bench({
  name: "Worker postMessage round trip 64 B",
  group: "sync round trip 64 B",
  baseline: true,
  async fn() {
    await postRoundTrip(d64);
  },
});
Deno.bench({
  name: "Deno.Command child, line echo 64 B",
  group: "sync round trip 64 B",
  async fn() {
    await lineRoundTrip(line64);
  },
});
Deno.bench({
  name: "IpcPipeUnixSocket.sendSync 64 B, isolated, blocking worker",
  group: "sync round trip 64 B",
  fn() {
    using _r = blockingPipe.sendSync({ cmd: 1, data: d64 });
  },
});
Deno.bench({
  name: "IpcPipeUnixSocket.sendSync 64 B, isolated, event-loop worker",
  group: "sync round trip 64 B",
  fn() {
    using _r = loopPipe.sendSync({ cmd: 1, data: d64 });
  },
});

Deno.bench({
  name: "IpcPipeUnixSocket.sendSync 64 B (no fd)",
  group: "sync round trip 64 B + 1 fd each way",
  baseline: true,
  fn() {
    using _r = blockingPipe.sendSync({ cmd: 1, data: d64 });
  },
});
Deno.bench({
  name: "IpcPipeUnixSocket.sendSync 64 B + 1 fd each way",
  group: "sync round trip 64 B + 1 fd each way",
  fn() {
    using _r = blockingPipe.sendSync({ cmd: 1, data: d64, fds: [memfd] });
  },
});

Deno.bench({
  name: "Worker postMessage round trip 64 KiB",
  group: "sync round trip 64 KiB",
  baseline: true,
  async fn() {
    await postRoundTrip(d64k);
  },
});
Deno.bench({
  name: "IpcPipeUnixSocket.sendSync 64 KiB",
  group: "sync round trip 64 KiB",
  fn() {
    using _r = blockingPipe.sendSync({ cmd: 1, data: d64k });
  },
});

Deno.bench({
  name: "32 sequential sendSync calls",
  group: "32 calls",
  baseline: true,
  fn() {
    for (let i = 0; i < 32; i++) {
      using _r = loopPipe.sendSync({ cmd: 1, data: d64 });
    }
  },
});
Deno.bench({
  name: "32 Promise calls in flight",
  group: "32 calls",
  async fn() {
    const calls = [];
    for (let i = 0; i < 32; i++) {
      calls.push(loopPipe.call({ cmd: 1, data: d64 }));
    }
    for (const r of await Promise.all(calls)) r[Symbol.dispose]();
  },
});

const EVENTS = 100;
let eventsSeen = 0;
loopPipe.addEventListener("recv", (e) => {
  eventsSeen++;
  e.message[Symbol.dispose]();
});
const burst = new Uint8Array(new Uint32Array([EVENTS]).buffer);
Deno.bench({
  name: `${EVENTS} events (64 B) from the worker`,
  group: "events",
  async fn() {
    const start = eventsSeen;
    using _r = await loopPipe.call({ cmd: 2, data: burst });
    while (eventsSeen - start < EVENTS) {
      await new Promise((r) => setTimeout(r, 0));
    }
  },
});

globalThis.addEventListener("unload", () => {
  memfd.close();
  postWorker.terminate();
  child.kill();
});
