import { fromFileUrl } from "@std/path";
import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  createMemfd,
  IpcPeerGoneError,
  IpcPipeUnixSocket,
  IpcRemoteError,
  IpcTimeoutError,
  readFd,
} from "../../mod.ts";
import {
  pipeWarmCalls,
  sendSyncBorrowed,
} from "../../src/pipe/ipc_pipe_unix_socket.ts";
import {
  pattern,
  procExists,
  test,
  warmUpWorkers,
  within,
  withoutFdLeak,
} from "../_helpers.ts";

const FIXTURE = fromFileUrl(
  new URL("../fixtures/pipe_worker.ts", import.meta.url),
);
const RECEIVER =
  new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href;
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const readU32 = (d: Uint8Array) =>
  new DataView(d.buffer, d.byteOffset).getUint32(0, true);

interface Start {
  blocking?: boolean;
  isolate?: boolean;
  timeout?: number;
  keepWarm?: boolean;
}

function startPipe(opts: Start = {}): IpcPipeUnixSocket {
  return new IpcPipeUnixSocket(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read",
      FIXTURE,
      ...(opts.blocking ? ["--blocking"] : []),
    ],
    isolate: opts.isolate,
    timeout: opts.timeout ?? 10_000,
    keepWarm: opts.keepWarm,
  });
}

/** Runs `fn` with fd and zombie accounting around it. */
async function clean(fn: (pids: number[]) => Promise<void>): Promise<void> {
  await warmUpWorkers(RECEIVER);
  const pids: number[] = [];
  await withoutFdLeak(() => fn(pids));
  for (const pid of pids) assert(!procExists(pid), `process ${pid} left`);
}

test.userns("`IpcPipeUnixSocket.sendSync()` returns the reply to its call, across an isolated child", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe({ isolate: true });
    pids.push(pipe.process.pid!);
    assert(pipe.process.describe().isolation.networkNamespace);
    using r = pipe.sendSync({ cmd: 1, data: pattern(64) });
    assertEquals(r.cmd, 1);
    assertEquals(r.data, pattern(64));
    assert(r.cookie !== 0);
    using big = pipe.sendSync({ cmd: 1, data: pattern(1 << 20) });
    assertEquals(big.data, pattern(1 << 20));
  });
});

test.userns("`IpcPipeUnixSocket.sendSync()` passes fds: three memfds in, their concatenation back in a new memfd", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe({ isolate: true });
    pids.push(pipe.process.pid!);
    const parts = ["red,", "green,", "blue"].map((s) =>
      createMemfd({ data: new TextEncoder().encode(s) })
    );
    try {
      using r = pipe.sendSync({ cmd: 5, fds: parts });
      assertEquals(r.fds.length, 1);
      assertEquals(
        new TextDecoder().decode(readFd(r.ownedFds[0])),
        "red,green,blue",
      );
    } finally {
      parts.forEach((fd) => fd.close());
    }
  });
});

Deno.test("`IpcPipeUnixSocket.call()` keeps many calls outstanding, each reply matched by cookie", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    const calls = Array.from(
      { length: 32 },
      (_, i) => pipe.call({ cmd: 1, data: pattern(100 + i, i + 1) }),
    );
    const replies = await Promise.all(calls);
    replies.forEach((r, i) => {
      assertEquals(r.data, pattern(100 + i, i + 1));
      r[Symbol.dispose]();
    });
  });
});

Deno.test("`IpcPipeUnixSocket` delivers events in order, never inside sendSync(), including those that came while it blocked", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    const seen: number[] = [];
    let inSync = false;
    let duringSync = 0;
    pipe.addEventListener("recv", (e) => {
      using m = e.message;
      if (inSync) duringSync++;
      if (m.cmd === 101) seen.push(readU32(m.data));
    });
    pipe.sendAsync({ cmd: 6, data: u32(1) }); // an event every ms
    for (let i = 0; i < 50; i++) {
      inSync = true;
      using _r = pipe.sendSync({ cmd: 2, data: u32(2) }); // 2 ms service
      inSync = false;
      await new Promise((r) => setTimeout(r, 0));
    }
    pipe.sendAsync({ cmd: 6, data: u32(0) }); // stop
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(duringSync, 0);
    assert(seen.length > 20, `only ${seen.length} events`);
    assertEquals(seen, Array.from({ length: seen.length }, (_, i) => i + 1));
  });
});

Deno.test("`IpcPipeUnixSocket` delivers an event sent just before the reply after the reply, in order", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    const order: string[] = [];
    pipe.addEventListener("recv", (e) => {
      using m = e.message;
      order.push(`event ${m.cmd}`);
    });
    using r = pipe.sendSync({ cmd: 4, data: u32(7) });
    order.push(`reply ${r.cmd}`);
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(order, ["reply 4", "event 100"]);
    // With a Promise call the event is dispatched first: arrival order.
    order.length = 0;
    const p = pipe.call({ cmd: 4 }).then((r) => {
      order.push(`reply ${r.cmd}`);
      r[Symbol.dispose]();
    });
    await p;
    assertEquals(order, ["event 100", "reply 4"]);
  });
});

Deno.test("`IpcPipeUnixSocket.sendSync()` to four streaming workers back to back: all complete, none waits for a timeout", async () => {
  await clean(async (pids) => {
    const pipes = [0, 1, 2, 3].map(() => startPipe({ timeout: 2000 }));
    try {
      pids.push(...pipes.map((p) => p.process.pid!));
      const events = [0, 0, 0, 0];
      pipes.forEach((p, i) =>
        p.addEventListener("recv", (e) => {
          events[i]++;
          e.message[Symbol.dispose]();
        })
      );
      for (const p of pipes) p.sendAsync({ cmd: 6, data: u32(2) });
      await new Promise((r) => setTimeout(r, 100)); // cameras streaming
      // Four 20 ms services; a lost reply would be an IpcTimeoutError.
      for (const p of pipes) {
        using r = p.sendSync({ cmd: 2, data: u32(20) }); // "stop": 20 ms
        assertEquals(r.cmd, 2);
      }
      await new Promise((r) => setTimeout(r, 20));
      assert(events.every((n) => n > 0), `events ${events}`);
    } finally {
      await Promise.all(pipes.map((p) => p.close()));
    }
  });
});

Deno.test("`IpcPipeUnixSocket.sendSync()` to a worker that never answers times out at its deadline; the others complete", async () => {
  await clean(async (pids) => {
    const pipes = [0, 1, 2, 3].map(() => startPipe());
    try {
      pids.push(...pipes.map((p) => p.process.pid!));
      for (const [i, p] of pipes.entries()) {
        if (i === 1) {
          const t0 = performance.now();
          const e = assertThrows(
            () => p.sendSync({ cmd: 3 }, { timeout: 300 }),
            IpcTimeoutError,
          );
          assertEquals(e.timeout, 300);
          assert(e.message.includes("cookie"), e.message);
          // Not before its deadline.
          assertGreaterOrEqual(performance.now() - t0, 299);
        } else {
          // Unaffected by the other's timeout: a reply, not a timeout.
          p.sendSync({ cmd: 1 }, { timeout: 5000 })[Symbol.dispose]();
        }
      }
    } finally {
      await Promise.all(pipes.map((p) => p.close({ grace: 200 })));
    }
  });
});

Deno.test("`IpcPipeUnixSocket` fails pending sync and Promise calls at once with the exit report when the worker is SIGKILLed", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    let disconnected = 0;
    pipe.addEventListener("disconnect", () => disconnected++);
    pipe.sendAsync({ cmd: 10, data: u32(50) }); // SIGKILL itself in 50 ms
    const pending = pipe.call({ cmd: 3 }, { timeout: 10_000 });
    pending.catch(() => {}); // checked below
    // Noticed by the death (IpcPeerGoneError), not by the deadline
    // (that would be IpcTimeoutError).
    const e = assertThrows(
      () => pipe.sendSync({ cmd: 3 }, { timeout: 10_000 }),
      IpcPeerGoneError,
      "Cannot call 3: the worker is gone (killed by SIGKILL",
    );
    assertEquals(e.exit?.kind, "signaled");
    assert(e.exit?.kind === "signaled" && e.exit.signal === "SIGKILL");
    const pe: IpcPeerGoneError = await within(
      assertRejects(() => pending, IpcPeerGoneError),
      5000,
      "pending Promise call",
    );
    assertEquals(pe.exit?.kind, "signaled");
    assert(pe.message.startsWith("Cannot call 3: the worker is gone"));
    assertEquals(pipe.connected, false);
    assertThrows(() => pipe.sendSync({ cmd: 1 }), IpcPeerGoneError);
    await assertRejects(() => pipe.call({ cmd: 1 }), IpcPeerGoneError);
    await new Promise((r) => setTimeout(r, 10));
    assertEquals(disconnected, 1);
  });
});

Deno.test("`IpcPipeUnixSocket` reports a worker's exit code and stderr tail", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    const e = assertThrows(
      () => pipe.sendSync({ cmd: 8, data: u32(3) }),
      IpcPeerGoneError,
    );
    assertEquals(e.exit?.kind, "exited");
    assert(e.exit?.kind === "exited" && e.exit.code === 3);
    assert(
      new TextDecoder().decode(e.exit?.stderr).includes(
        "worker exiting on request",
      ),
    );
    assert(e.message.includes("exited with code 3"), e.message);
  });
});

Deno.test("`IpcPipeUnixSocket` drops and counts a reply that comes after its call timed out", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    await assertRejects(
      () => pipe.call({ cmd: 2, data: u32(200) }, { timeout: 50 }),
      IpcTimeoutError,
    );
    // Served after the slow one: its late reply arrives first.
    using r = pipe.sendSync({ cmd: 1, data: u32(5) });
    assertEquals(readU32(r.data), 5);
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(pipe.lateReplies, 1);
  });
});

Deno.test("`IpcPipeUnixSocket` turns a throwing handler into IpcRemoteError; the pipe goes on", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    const e = assertThrows(() => pipe.sendSync({ cmd: 7 }), IpcRemoteError);
    assertEquals([e.cmd, e.code], [7, 0]);
    assertEquals(e.remoteMessage, "handler failed on purpose");
    assertEquals(
      e.message,
      "Call 7 failed in the worker: handler failed on purpose",
    );
    const p = await assertRejects(() => pipe.call({ cmd: 7 }), IpcRemoteError);
    assertEquals(p.cmd, 7);
    pipe.sendSync({ cmd: 1 })[Symbol.dispose]();
  });
});

Deno.test("`IpcPipeWorker` refuses the reserved commands as a reply (the caller gets an IpcRemoteError) and as an event (RangeError)", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    const events: number[] = [];
    pipe.addEventListener("recv", (e) => {
      using m = e.message;
      events.push(m.cmd);
    });
    for (const reserved of [0xfffffffe, 0xffffffff]) {
      const e = assertThrows(
        () => pipe.sendSync({ cmd: 17, data: u32(reserved) }),
        IpcRemoteError,
      );
      assertEquals(e.cmd, 17);
      assert(e.remoteMessage.includes("reserved"), e.remoteMessage);
      using r = pipe.sendSync({ cmd: 18, data: u32(reserved) });
      assertEquals(new TextDecoder().decode(r.data), "RangeError");
    }
    // A normal command still goes both ways.
    using ok = pipe.sendSync({ cmd: 18, data: u32(42) });
    assertEquals(new TextDecoder().decode(ok.data), "sent");
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(events, [42]);
  });
});

Deno.test("`IpcPipeUnixSocket` carries a handler's IpcCallError code to IpcRemoteError.code", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    const e = assertThrows(() => pipe.sendSync({ cmd: 11 }), IpcRemoteError);
    assertEquals([e.cmd, e.code, e.remoteMessage], [11, 42, "coded failure"]);
    const p = await assertRejects(() => pipe.call({ cmd: 11 }), IpcRemoteError);
    assertEquals([p.cmd, p.code, p.remoteMessage], [11, 42, "coded failure"]);
  });
});

Deno.test("`IpcPipeUnixSocket.sendSync()` replies and a worker's messages own their bytes, call after call", async () => {
  await clean(async (pids) => {
    for (const blocking of [false, true]) {
      await using pipe = startPipe({ blocking });
      pids.push(pipe.process.pid!);
      const call = (...b: number[]) =>
        pipe.sendSync({ cmd: 15, data: new Uint8Array(b) });
      // Same lengths each call, as a frame's calls are.
      using first = call(1, 2, 3);
      assertEquals(first.data, new Uint8Array());
      using second = call(4, 5, 6);
      assertEquals(second.data, new Uint8Array([1, 2, 3]), "kept by worker");
      using third = call(7, 8, 9);
      assertEquals(third.data, new Uint8Array([4, 5, 6]));
      assertEquals(second.data, new Uint8Array([1, 2, 3]), "kept by caller");
      assertEquals(second.data.buffer.byteLength, 3);
    }
  });
});

Deno.test("`sendSyncBorrowed()` lends the reply's bytes and runs its work between sending and sleeping, before a reply with descriptors", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe();
    pids.push(pipe.process.pid!);
    using file = createMemfd({ data: new TextEncoder().encode("passed") });
    let ran = 0;
    // The worker answers 20 ms later: the work runs first, then the call
    // sleeps for the reply (which brings the descriptor back).
    using reply = sendSyncBorrowed(
      pipe,
      { cmd: 16, data: u32(20), fds: [file] },
      undefined,
      () => ran++,
    );
    assertEquals(ran, 1);
    assertEquals(readU32(reply.data), 20);
    assertEquals(reply.ownedFds.length, 1);
    assertEquals(new TextDecoder().decode(readFd(reply.ownedFds[0])), "passed");
    // A plain reply is a view of the receive buffer: the next call's reply
    // lands where it was.
    using a = sendSyncBorrowed(pipe, { cmd: 1, data: u32(1) });
    const held = a.data;
    using _b = sendSyncBorrowed(pipe, { cmd: 1, data: u32(2) });
    assertEquals(readU32(held), 2);
    // An event sent before the reply: read on the way, kept and delivered
    // after the call, the reply read whole; the work runs at most once.
    const events: number[] = [];
    pipe.addEventListener("recv", (e) => {
      using m = e.message;
      events.push(m.cmd);
    });
    for (let i = 0; i < 20; i++) {
      let runs = 0;
      using r = sendSyncBorrowed(
        pipe,
        { cmd: 4, data: u32(i) },
        undefined,
        () => runs++,
      );
      assertEquals([r.cmd, readU32(r.data)], [4, i]);
      assert(runs <= 1);
    }
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(events, new Array(20).fill(100));
  });
});

Deno.test("`IpcPipeUnixSocket` refuses bad input with typed errors", async () => {
  await clean(async (pids) => {
    await using pipe = startPipe({ blocking: true });
    pids.push(pipe.process.pid!);
    assertThrows(() => pipe.sendSync({ cmd: -1 }), RangeError);
    assertThrows(() => pipe.sendSync({ cmd: 0xffffffff }), RangeError);
    // The warm-up command is the pipe's own, whatever path a call takes.
    assertThrows(() => pipe.sendSync({ cmd: 0xfffffffe }), RangeError);
    assertThrows(
      () => pipe.sendSync({ cmd: 0xfffffffe, data: new Uint8Array(70_000) }),
      RangeError,
    );
    await assertRejects(() => pipe.call({ cmd: 0xfffffffe }), RangeError);
    assertThrows(() => pipe.sendAsync({ cmd: 0xfffffffe }), RangeError);
    assertThrows(
      // deno-lint-ignore no-explicit-any
      () => startPipe({ keepWarm: "yes" as any }),
      TypeError,
      "options.keepWarm",
    );
    assertThrows(() => pipe.sendSync({ cmd: 1 }, { timeout: -5 }), RangeError);
    await assertRejects(() => pipe.call({ cmd: 1.5 }), RangeError);
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    await assertRejects(() => pipe.call({ cmd: 1 }, { signal: ac.signal }));
    pipe.sendSync({ cmd: 1 })[Symbol.dispose]();
    await pipe.close();
    assertThrows(() => pipe.sendSync({ cmd: 1 }), Error, "closed");
  });
});

Deno.test("`IpcPipeUnixSocket`: 64 pipes at once, 1000 interleaved sync and Promise calls each, every reply matches", async () => {
  await clean(async (pids) => {
    const pipes: IpcPipeUnixSocket[] = [];
    try {
      for (let i = 0; i < 64; i++) {
        pipes.push(startPipe({ blocking: i % 2 === 0 }));
      }
      pids.push(...pipes.map((p) => p.process.pid!));
      let checked = 0;
      for (let round = 0; round < 500; round++) {
        const promises: Promise<void>[] = [];
        for (const [i, p] of pipes.entries()) {
          const tag = (i << 16) | round;
          using r = p.sendSync({ cmd: 1, data: u32(tag) });
          assertEquals(readU32(r.data), tag);
          checked++;
          const tag2 = tag | 0x8000;
          promises.push(
            p.call({ cmd: 1, data: u32(tag2) }).then((r) => {
              assertEquals(readU32(r.data), tag2);
              checked++;
              r[Symbol.dispose]();
            }),
          );
        }
        await Promise.all(promises);
      }
      assertEquals(checked, 64 * 1000);
    } finally {
      await Promise.all(pipes.map((p) => p.close()));
    }
  });
});

for (const blocking of [false, true]) {
  Deno.test(
    `\`IpcPipeUnixSocket\` with keepWarm: sync calls at a steady cadence get a warm call before each, which a ${
      blocking ? "serveBlocking()" : "serve()"
    } worker answers without its handler`,
    async () => {
      await clean(async (pids) => {
        for (const keepWarm of [true, false]) {
          await using pipe = startPipe({ blocking, keepWarm });
          pids.push(pipe.process.pid!);
          // Command 15 answers the bytes of the previous command 15: a warm
          // call that reached the handler would break the chain.
          let previous = new Uint8Array(0);
          for (let frame = 0; frame < 12; frame++) {
            if (frame > 0) await sleep(25);
            const data = u32(frame);
            using reply = pipe.sendSync({ cmd: 15, data });
            assertEquals(reply.data, previous);
            previous = data;
          }
          const warm = pipeWarmCalls(pipe);
          // One per gap after the first; a late timer may miss some.
          if (keepWarm) assert(warm >= 2 && warm <= 11, `${warm}`);
          else assertEquals(warm, 0);
        }
        // Closed pipes leave no timer armed (the sanitizer checks).
      });
    },
  );
}
