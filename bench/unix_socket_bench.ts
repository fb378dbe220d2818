// IpcUnixSocket between the main thread and a Worker, each blocking in
// receive(), against Worker postMessage of the same bytes (the baseline in
// each group). Run: deno task bench (or deno bench --allow-ffi --allow-read
// bench/unix_socket_bench.ts).
import { createMemfd, IpcUnixSocket } from "../mod.ts";

const sock = new IpcUnixSocket();
const peer = sock.create();
const sockWorker = new Worker(
  new URL("./_socket_echo_worker.ts", import.meta.url).href,
  { type: "module" },
);
await new Promise((resolve) => {
  sockWorker.onmessage = resolve;
  sockWorker.postMessage({ fd: peer.release() });
});

// The same, both sides spinning 50 µs before sleeping (DEFAULT_SPIN_US).
const spinSock = new IpcUnixSocket();
const spinPeer = spinSock.create();
const spinWorker = new Worker(
  new URL("./_socket_echo_worker.ts", import.meta.url).href,
  { type: "module" },
);
await new Promise((resolve) => {
  spinWorker.onmessage = resolve;
  spinWorker.postMessage({ fd: spinPeer.release(), spin: 50 });
});

const postWorker = new Worker(
  new URL("./_post_echo_worker.ts", import.meta.url).href,
  { type: "module" },
);
let pending: ((v: unknown) => void) | undefined;
postWorker.onmessage = (e) => pending?.(e.data);
function postRoundTrip(data: Uint8Array): Promise<unknown> {
  return new Promise((resolve) => {
    pending = resolve;
    postWorker.postMessage(data);
  });
}

const TIMEOUT = { timeout: 5000 };

function isolaRoundTrip(data: Uint8Array): void {
  sock.send({ data }, TIMEOUT);
  using _reply = sock.receive(TIMEOUT);
}

const memfd = createMemfd({ name: "bench", data: new Uint8Array(64) });

for (
  const [label, size] of [
    ["64 B", 64],
    ["4 KiB", 4096],
    ["64 KiB", 65536],
    ["1 MiB", 1 << 20],
  ] as const
) {
  const data = new Uint8Array(size); // data[0] = 0: echo
  Deno.bench({
    name: `postMessage round trip ${label}`,
    group: `round trip ${label}`,
    baseline: true,
    async fn() {
      await postRoundTrip(data);
    },
  });
  Deno.bench({
    name: `IpcUnixSocket round trip ${label}`,
    group: `round trip ${label}`,
    fn() {
      isolaRoundTrip(data);
    },
  });
}

const small = new Uint8Array(64);
Deno.bench({
  name: "postMessage round trip 64 B",
  group: "round trip 64 B, spinning before sleep",
  baseline: true,
  async fn() {
    await postRoundTrip(small);
  },
});
Deno.bench({
  name: "IpcUnixSocket round trip 64 B, both sides spin 50 µs",
  group: "round trip 64 B, spinning before sleep",
  fn() {
    spinSock.send({ data: small }, TIMEOUT);
    using _reply = spinSock.receive({ ...TIMEOUT, spin: 50 });
  },
});

Deno.bench({
  name: "postMessage round trip 64 B (no fd possible)",
  group: "round trip 64 B + 1 fd each way",
  baseline: true,
  async fn() {
    await postRoundTrip(small);
  },
});
Deno.bench({
  name: "IpcUnixSocket round trip 64 B + 1 fd each way",
  group: "round trip 64 B + 1 fd each way",
  fn() {
    sock.send({ data: small, fds: [memfd] }, TIMEOUT);
    using _reply = sock.receive(TIMEOUT);
  },
});

// One way: BATCH messages, then one acknowledged round trip.
const BATCH = 100;
const sink = Uint8Array.of(1);
const ack = Uint8Array.of(2);
for (const nfds of [1, 16]) {
  const fds = Array(nfds).fill(memfd);
  Deno.bench({
    name: `IpcUnixSocket one way, ${BATCH} messages x ${nfds} fd`,
    group: "one way fds",
    baseline: nfds === 1,
    fn() {
      for (let i = 0; i < BATCH; i++) sock.send({ data: sink, fds }, TIMEOUT);
      sock.send({ data: ack }, TIMEOUT);
      using _reply = sock.receive(TIMEOUT);
    },
  });
}
Deno.bench({
  name: `IpcUnixSocket one way, ${BATCH} messages x 64 B`,
  group: "one way fds",
  fn() {
    for (let i = 0; i < BATCH; i++) sock.send({ data: sink }, TIMEOUT);
    sock.send({ data: ack }, TIMEOUT);
    using _reply = sock.receive(TIMEOUT);
  },
});

// Deno runs benches, then exits; close everything at unload so the worker
// loop ends cleanly.
globalThis.addEventListener("unload", () => {
  sock.close();
  spinSock.close();
  memfd.close();
  sockWorker.terminate();
  spinWorker.terminate();
  postWorker.terminate();
});
