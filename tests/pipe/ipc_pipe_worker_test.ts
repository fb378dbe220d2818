import { assertEquals, assertThrows } from "@std/assert";
import {
  createMemfd,
  IPC_ERROR_CMD,
  IpcCallError,
  IpcClosedError,
  type IpcPayload,
  IpcPipeWorker,
  IpcTimeoutError,
  IpcUnixSocket,
  type OwnedFd,
  readFd,
} from "../../mod.ts";
import { encodeMessage } from "../../src/pipe/ipc_message.ts";
import { MsgBuffers } from "../../ffi/socket.ts";
import { decodeErrorReply } from "../../src/pipe/ipc_call_error.ts";
import { within, withoutFdLeak } from "../_helpers.ts";

const u32At = (d: Uint8Array, at: number) =>
  new DataView(d.buffer, d.byteOffset).getUint32(at, true);

/**
 * The next message on `sock`, read without blocking the event loop (the
 * worker serves on this same thread).
 */
async function next(sock: IpcUnixSocket): Promise<IpcPayload> {
  const giveUp = performance.now() + 5000;
  for (;;) {
    try {
      return sock.receive({ timeout: 0 });
    } catch (e) {
      if (!(e instanceof IpcTimeoutError) || performance.now() > giveUp) {
        throw e;
      }
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** A parent end (raw socket) and a worker serving the other end. */
function connect(): { parent: IpcUnixSocket; worker: IpcPipeWorker } {
  const parent = new IpcUnixSocket();
  const worker = new IpcPipeWorker(parent.create());
  return { parent, worker };
}

Deno.test("`IpcPipeWorker.serve()` answers a call with its cookie, in order, and returns at the parent's hang-up", async () => {
  await withoutFdLeak(async () => {
    const { parent, worker } = connect();
    const order: number[] = [];
    const served = worker.serve({
      async onCall(msg) {
        // The slower first handler still answers first: one at a time.
        if (msg.cmd === 1) await new Promise((r) => setTimeout(r, 20));
        order.push(msg.cmd);
        return { cmd: msg.cmd + 100, data: msg.data };
      },
      onMessage(msg) {
        order.push(msg.cmd);
      },
    });
    parent.send(encodeMessage(1, 11, new Uint8Array([7]), []));
    parent.send(encodeMessage(5, 0, new Uint8Array(0), [])); // sendAsync
    parent.send(encodeMessage(2, 12, new Uint8Array([8]), []));
    for (const [cookie, cmd, byte] of [[11, 101, 7], [12, 102, 8]]) {
      using r = await next(parent);
      assertEquals([u32At(r.data, 0), u32At(r.data, 4)], [cmd, cookie]);
      assertEquals(r.data[8], byte);
    }
    assertEquals(order, [1, 5, 2]);
    parent.close();
    await within(served, 5000, "serve() ends at the hang-up");
  });
});

Deno.test("`IpcPipeWorker` sends a throw as an error reply: code 0 for an Error, the IpcCallError's code otherwise", async () => {
  await withoutFdLeak(async () => {
    const { parent, worker } = connect();
    const served = worker.serve({
      onCall(msg) {
        if (msg.cmd === 1) throw new Error("plain failure");
        throw new IpcCallError(0xfffffffe, "coded failure");
      },
    });
    parent.send(encodeMessage(1, 1, new Uint8Array(0), []));
    parent.send(encodeMessage(2, 2, new Uint8Array(0), []));
    const seen = [];
    for (let i = 0; i < 2; i++) {
      using r = await next(parent);
      assertEquals(u32At(r.data, 0), IPC_ERROR_CMD);
      seen.push({
        cookie: u32At(r.data, 4),
        ...decodeErrorReply(r.data.subarray(8)),
      });
    }
    assertEquals(seen, [
      { cookie: 1, code: 0, text: "plain failure" },
      { cookie: 2, code: 0xfffffffe, text: "coded failure" },
    ]);
    parent.close();
    await within(served, 5000, "serve() ends");
  });
});

Deno.test("`IpcPipeWorker` closes the OwnedFds of a reply once sent, and the call's own descriptors after the handler", async () => {
  await withoutFdLeak(async () => {
    const { parent, worker } = connect();
    const served = worker.serve({
      onCall(msg) {
        const text = new TextDecoder().decode(readFd(msg.ownedFds[0]));
        const out = createMemfd({ data: new TextEncoder().encode(text + "!") });
        return { cmd: 1, fds: [out] };
      },
    });
    using sent = createMemfd({ data: new TextEncoder().encode("hi") });
    parent.send(encodeMessage(1, 3, new Uint8Array(0), [sent]));
    using r = await next(parent);
    using got = r.fds[0] as OwnedFd;
    assertEquals(new TextDecoder().decode(readFd(got)), "hi!");
    parent.close();
    await within(served, 5000, "serve() ends");
  });
});

Deno.test("`IpcPipeWorker.serveBlocking()` refuses an async handler with a TypeError", async () => {
  await withoutFdLeak(() => {
    const { parent, worker } = connect();
    parent.send(encodeMessage(1, 1, new Uint8Array(0), []));
    assertThrows(
      () => worker.serveBlocking({ onCall: async () => {} }, { spin: 0 }),
      TypeError,
      "returned a Promise",
    );
    worker.close();
    parent.close();
  });
});

Deno.test("`IpcPipeWorker.fromArgs()` refuses a last argument that is not a descriptor number", () => {
  assertThrows(
    () => IpcPipeWorker.fromArgs(["run", "worker.ts"]),
    TypeError,
    '"worker.ts" is not a descriptor number',
  );
  assertThrows(() => IpcPipeWorker.fromArgs([]), TypeError);
});

Deno.test("`IpcPipeWorker.emit()` sends an event with cookie 0; after the parent is gone it throws", async () => {
  await withoutFdLeak(async () => {
    const { parent, worker } = connect();
    worker.emit({ cmd: 9, data: new Uint8Array([1, 2]) });
    using r = await next(parent);
    assertEquals([u32At(r.data, 0), u32At(r.data, 4)], [9, 0]);
    parent.close();
    assertThrows(() => worker.emit({ cmd: 9 }), IpcClosedError);
    worker.close();
  });
});

Deno.test("`IpcCallError` refuses code 0 and codes outside u32", () => {
  assertThrows(() => new IpcCallError(0, "x"), RangeError, "code");
  assertThrows(() => new IpcCallError(2 ** 32, "x"), RangeError, "code");
  assertEquals(new IpcCallError(1, "x").code, 1);
});

Deno.test("`IpcPipeWorker.serve()` lets timers and Promises run while it waits for messages, and answers after", async () => {
  const parentEnd = new IpcUnixSocket();
  const worker = new IpcPipeWorker(parentEnd.create());
  const served = worker.serve({
    async onCall(msg) {
      // A handler that waits on a timer, as an IPA may.
      await new Promise((r) => setTimeout(r, 1));
      return { cmd: msg.cmd + 1 };
    },
  });
  try {
    // Nothing arrives: the serving thread waits, and the timer still fires.
    await within(
      new Promise((r) => setTimeout(r, 10)),
      5000,
      "a timer while serve() waits",
    );
    parentEnd.send({ data: new Uint8Array([7, 0, 0, 0, 9, 0, 0, 0]) });
    using r = await next(parentEnd);
    assertEquals([...r.data], [8, 0, 0, 0, 9, 0, 0, 0]);
  } finally {
    parentEnd.close();
    await within(served, 5000, "serve() to end at the hang-up");
  }
});

Deno.test("`IpcPipeWorker.serve()` drops a bad frame, closing its descriptors, and goes on serving", async () => {
  await withoutFdLeak(async () => {
    const parentEnd = new IpcUnixSocket();
    const worker = new IpcPipeWorker(parentEnd.create());
    const served = worker.serve({ onCall: (msg) => ({ cmd: msg.cmd }) });
    try {
      // A frame of version 9 with a descriptor: rejected, fd closed.
      using fd = createMemfd({ data: new Uint8Array([1]) });
      const raw = new MsgBuffers(16, 1);
      raw.data.set([3, 0, 0, 0, 1, 0, 0, 9, 1, 2, 3]);
      assertEquals(raw.sendmsg(parentEnd.fd, 11, [fd.fd], 0), 11);
      parentEnd.send({ data: new Uint8Array([5, 0, 0, 0, 6, 0, 0, 0]) });
      using r = await next(parentEnd);
      assertEquals([...r.data], [5, 0, 0, 0, 6, 0, 0, 0]);
    } finally {
      parentEnd.close();
      await within(served, 5000, "serve() to end at the hang-up");
    }
  });
});
