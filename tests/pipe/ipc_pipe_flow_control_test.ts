// Deadlines and back-pressure of IpcPipeUnixSocket: a worker that stops
// reading, a worker that floods, a worker that dies under a sendAsync().
// Counts and invariants only; timings are in bench/flood_bench.ts.
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  createMemfd,
  IpcPeerGoneError,
  type IpcPipeOptions,
  IpcPipeUnixSocket,
  IpcTimeoutError,
  readFd,
} from "../../mod.ts";
import { Receiver } from "../../src/pipe/_receiver.ts";
import {
  E_INFLIGHT,
  entry,
  MAX_PIPES,
} from "../../src/pipe/_receiver_shared.ts";
import {
  pattern,
  procExists,
  warmUpWorkers,
  within,
  withoutFdLeak,
} from "../_helpers.ts";

const FIXTURE = new URL("../fixtures/pipe_worker.ts", import.meta.url).pathname;
const RECEIVER =
  new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href;
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const readU32 = (d: Uint8Array, at = 0) =>
  new DataView(d.buffer, d.byteOffset).getUint32(at, true);

/** Messages the receiver has read ahead of delivery, most over all pipes. */
function inFlight(): number {
  const table = Receiver.acquire().table;
  let most = 0;
  for (let idx = 1; idx < MAX_PIPES; idx++) {
    most = Math.max(most, table[entry(idx) + E_INFLIGHT]);
  }
  return most;
}

const STALL = 12;
const ARRIVAL = 13;
const FLOOD = 14;

/** A started pipe_worker.ts, answering already. */
function startPipe(options: IpcPipeOptions = {}): IpcPipeUnixSocket {
  const pipe = new IpcPipeUnixSocket(Deno.execPath(), {
    args: ["run", "--allow-ffi", "--allow-read", FIXTURE],
    timeout: 20_000,
    ...options,
  });
  pipe.sendSync({ cmd: 1 })[Symbol.dispose]();
  return pipe;
}

/** Runs `fn` with fd and zombie accounting around it. */
async function clean(fn: (pids: number[]) => Promise<void>): Promise<void> {
  await warmUpWorkers(RECEIVER);
  const pids: number[] = [];
  await withoutFdLeak(() => fn(pids));
  for (const pid of pids) assert(!procExists(pid), `process ${pid} left`);
}

/**
 * Makes the worker stop reading for `ms`, then fills its socket with
 * sendAsync() until one times out (the pipe's sendTimeout). Returns how
 * many were accepted.
 */
function stallAndFill(pipe: IpcPipeUnixSocket, ms: number): number {
  pipe.sendAsync({ cmd: STALL, data: u32(ms) });
  for (let accepted = 0; accepted < 100_000; accepted++) {
    try {
      pipe.sendAsync({ cmd: 0, data: pattern(4096) });
    } catch (e) {
      assertInstanceOf(e, IpcTimeoutError);
      const message = (e as IpcTimeoutError).message;
      assert(message.includes("socket full"), message);
      return accepted;
    }
  }
  throw new Error("the socket never filled");
}

Deno.test("`IpcPipeUnixSocket.sendSync()`'s deadline bounds its send: a worker that stopped reading fails it with its own timeout", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe({ sendTimeout: 100 });
    pids.push(pipe.process.pid!);
    const accepted = stallAndFill(pipe, 60_000);
    assert(accepted > 0, "nothing was accepted before the socket filled");
    const e = assertThrows(
      () => pipe.sendSync({ cmd: 1 }, { timeout: 250 }),
      IpcTimeoutError,
      "Cannot call 1: the worker has not read for 250 ms (socket full)",
    );
    assertEquals(e.timeout, 250);
    // The pipe-level send timeout of sendAsync() is its own.
    const a = assertThrows(() => pipe.sendAsync({ cmd: 0 }), IpcTimeoutError);
    assertEquals(a.timeout, 100);
    assertEquals(pipe.connected, true);
  });
});

Deno.test("`IpcPipeUnixSocket.call()` on a full socket queues instead of blocking: its AbortSignal fires, its deadline fails it unsent", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe({ sendTimeout: 100 });
    pids.push(pipe.process.pid!);
    stallAndFill(pipe, 60_000);
    // A timer set before the call fires: the thread was not blocked (a
    // blocking send would fail the call with its own IpcTimeoutError).
    const ac = new AbortController();
    setTimeout(() => ac.abort(new RangeError("aborted by the caller")), 10);
    await within(
      assertRejects(
        () => pipe.call({ cmd: 1 }, { timeout: 60_000, signal: ac.signal }),
        RangeError,
        "aborted by the caller",
      ),
      10_000,
      "abort",
    );
    const e: IpcTimeoutError = await within(
      assertRejects(
        () => pipe.call({ cmd: 1 }, { timeout: 100 }),
        IpcTimeoutError,
        "Cannot call 1: not sent within 100 ms (the worker does not read)",
      ),
      10_000,
      "deadline",
    );
    assertEquals(e.timeout, 100);
  });
});

Deno.test("`IpcPipeUnixSocket.call()` queued on a full socket is sent once the worker reads, in order, with its descriptors", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe({ sendTimeout: 100 });
    pids.push(pipe.process.pid!);
    stallAndFill(pipe, 1500);
    const memfd = createMemfd({ data: new TextEncoder().encode("queued") });
    const echo = pipe.call({ cmd: 1, fds: [memfd] });
    memfd.close(); // the queued call keeps its own copy
    const first = pipe.call({ cmd: ARRIVAL });
    // A blocking call writes the queue first, then itself.
    using last = pipe.sendSync({ cmd: ARRIVAL });
    using e = await within(echo, 20_000, "queued echo");
    assertEquals(e.fds.length, 1);
    assertEquals(new TextDecoder().decode(readFd(e.ownedFds[0])), "queued");
    using f = await within(first, 20_000, "queued call");
    assert(
      readU32(f.data) < readU32(last.data),
      `arrivals ${readU32(f.data)}, ${readU32(last.data)}`,
    );
  });
});

/**
 * Counts the flood's events (cmd 101, numbered) as the owner gets them:
 * how many, how many out of order, the most the receiver had in flight.
 * `onFirst` runs inside the first event's handler (the owner is busy
 * there). `done` resolves with the worker's report (cmd 102): events
 * accepted, and 1 if a send timed out.
 */
function countFlood(pipe: IpcPipeUnixSocket, onFirst: () => void) {
  const seen = { got: 0, outOfOrder: 0, mostInFlight: 0 };
  const done = Promise.withResolvers<[number, number]>();
  pipe.addEventListener("recv", (ev) => {
    using m = ev.message;
    if (m.cmd === 101) {
      if (readU32(m.data) !== seen.got) seen.outOfOrder++;
      seen.got++;
      seen.mostInFlight = Math.max(seen.mostInFlight, inFlight());
      if (seen.got === 1) onFirst();
    } else if (m.cmd === 102) {
      done.resolve([readU32(m.data), readU32(m.data, 4)]);
    }
  });
  return { seen, done: done.promise };
}

Deno.test("`IpcPipeUnixSocket` receive window: a flooding worker's sends time out while the owner is busy; every accepted event is delivered, in order", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe({ receiveWindow: 16 });
    pids.push(pipe.process.pid!);
    // Once the flood runs, deliver nothing for a while: the receiver reads
    // a window ahead, then the socket fills and the worker's 50 ms sends
    // time out.
    const { seen, done } = countFlood(pipe, () => {
      const until = performance.now() + 1500;
      while (performance.now() < until) { /* the owner is busy */ }
    });
    pipe.sendAsync({ cmd: FLOOD, data: u32(1_000_000) });
    const [accepted, timedOut] = await within(done, 60_000, "flood");
    assertEquals(timedOut, 1, "the flooding worker was never slowed");
    assertEquals(seen.got, accepted);
    assertEquals(seen.outOfOrder, 0);
    // The receiver read a whole window ahead while the owner was busy, and
    // never more.
    assertEquals(seen.mostInFlight, 16);
  });
});

Deno.test("`IpcPipeUnixSocket.sendSync()` on a paused pipe: what it reads past the window is delivered in order and takes no credit", async () => {
  const FLOOD_EVENTS = 20_000;
  await clean(async (pids) => {
    await using pipe = startPipe({ receiveWindow: 16 });
    pids.push(pipe.process.pid!);
    let echoed = -1;
    let windowAhead = -1;
    const { seen, done } = countFlood(pipe, () => {
      // The receiver reads a window ahead and pauses; this call then reads
      // the rest of the flood itself, and its reply.
      const until = performance.now() + 20_000;
      while (inFlight() < 16 && performance.now() < until) {
        // the owner is busy
      }
      windowAhead = inFlight();
      using reply = pipe.sendSync({ cmd: 1, data: u32(7) });
      echoed = readU32(reply.data);
    });
    pipe.sendAsync({ cmd: FLOOD, data: u32(FLOOD_EVENTS) });
    const [accepted, timedOut] = await within(done, 60_000, "flood");
    assertEquals(echoed, 7);
    // The flood ran to its end or met a send timeout (as the sync call
    // drained the socket): either way every accepted event came, in order.
    assert(timedOut === 1 || accepted === FLOOD_EVENTS, `${accepted}`);
    assertEquals(seen.got, accepted);
    assertEquals(seen.outOfOrder, 0);
    // The receiver had read a whole window ahead, and never more.
    assertEquals(windowAhead, 16);
    assert(seen.mostInFlight <= 16, `${seen.mostInFlight} in flight`);
    // Every credit comes back (from a timer while the pipe was paused):
    // the receiver counts nothing in flight.
    const until = performance.now() + 5000;
    while (inFlight() > 0 && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 1));
    }
    assertEquals(inFlight(), 0);
  });
});

Deno.test("`IpcPipeUnixSocket.sendAsync()` right after the worker died fails with the exit report, like the calls", async () => {
  await clean(async (pids) => {
    for (let round = 0; round < 5; round++) {
      await using pipe = startPipe();
      pids.push(pipe.process.pid!);
      pipe.sendAsync({ cmd: 10, data: u32(0) }); // SIGKILL itself at once
      let error: unknown;
      for (let i = 0; i < 1_000_000 && error === undefined; i++) {
        try {
          pipe.sendAsync({ cmd: 0 });
        } catch (e) {
          error = e;
        }
      }
      assertInstanceOf(error, IpcPeerGoneError);
      const exit = (error as IpcPeerGoneError).exit;
      assertEquals(exit?.kind, "signaled", `round ${round}: ${error}`);
    }
  });
});

Deno.test("`IpcPipeUnixSocket` refuses a bad receiveWindow or sendTimeout with a RangeError naming it", () => {
  for (const receiveWindow of [0, 1.5, -1, NaN]) {
    assertThrows(
      () => new IpcPipeUnixSocket("/bin/true", { receiveWindow }),
      RangeError,
      "receiveWindow",
    );
  }
  assertThrows(
    () => new IpcPipeUnixSocket("/bin/true", { sendTimeout: -1 }),
    RangeError,
    "timeout",
  );
});
