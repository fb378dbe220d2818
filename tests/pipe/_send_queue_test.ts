import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  createMemfd,
  IpcClosedError,
  IpcTimeoutError,
  IpcUnixSocket,
  type OwnedFd,
  readFd,
} from "../../mod.ts";
import { SendQueue } from "../../src/pipe/_send_queue.ts";
import { within, withoutFdLeak } from "../_helpers.ts";

/** A socketpair whose `mine` end is full: `peer` has not read. */
function fullPair() {
  const mine = new IpcUnixSocket();
  const peer = new IpcUnixSocket();
  peer.bind(mine.create());
  let filled = 0;
  for (;;) {
    try {
      mine.send({ data: new Uint8Array(4096) }, { timeout: 0 });
      filled++;
    } catch (e) {
      assert(e instanceof IpcTimeoutError);
      break;
    }
  }
  return { mine, peer, filled };
}

/** Reads (without blocking the event loop) until a record of `n` bytes. */
async function readUntilSize(s: IpcUnixSocket, n: number) {
  for (let i = 0; i < 100_000; i++) {
    try {
      const m = s.receive({ timeout: 0 });
      if (m.data.length === n) return m;
      m[Symbol.dispose]();
    } catch (e) {
      if (!(e instanceof IpcTimeoutError)) throw e;
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  throw new Error(`no record of ${n} bytes`);
}

Deno.test("`SendQueue` writes queued calls in order once the peer reads, with its own copies of their descriptors", async () => {
  await withoutFdLeak(async () => {
    const { mine, peer, filled } = fullPair();
    assert(filled > 0);
    const owner = { wants: () => true, failed() {}, gone() {} };
    const q = new SendQueue(mine, owner);
    const memfd = createMemfd({ data: new TextEncoder().encode("kept") });
    q.push(1, { data: new Uint8Array(7), fds: [memfd] });
    memfd.close(); // the queue holds a duplicate
    q.push(2, { data: new Uint8Array(9) });
    assertEquals([q.length, q.has(1), q.has(3)], [2, true, false]);
    using first = await within(readUntilSize(peer, 7), 10_000, "first");
    assertEquals(
      new TextDecoder().decode(readFd(first.fds[0] as OwnedFd)),
      "kept",
    );
    using second = await within(readUntilSize(peer, 9), 10_000, "second");
    assertEquals(second.fds.length, 0);
    assertEquals(q.length, 0);
    await q.stop();
    mine.close();
    peer.close();
  });
});

Deno.test("`SendQueue` drops unsent a call its owner no longer wants, closing its descriptors", async () => {
  await withoutFdLeak(async () => {
    const { mine, peer } = fullPair();
    const wanted = new Set([2]);
    const q = new SendQueue(mine, {
      wants: (c) => wanted.has(c),
      failed() {},
      gone() {},
    });
    using memfd = createMemfd();
    q.push(1, { data: new Uint8Array(5), fds: [memfd] });
    q.push(2, { data: new Uint8Array(6) });
    using got = await within(readUntilSize(peer, 6), 10_000, "wanted");
    assertEquals(got.data.length, 6);
    assertEquals(q.length, 0);
    // Nothing of 5 bytes was sent before it.
    assertThrows(() => peer.receive({ timeout: 0 }), IpcTimeoutError);
    await q.stop();
    mine.close();
    peer.close();
  });
});

Deno.test("`SendQueue.flushSync()` gives up at its deadline on a full socket; stop() drops what is left", async () => {
  await withoutFdLeak(async () => {
    const { mine, peer } = fullPair();
    const q = new SendQueue(mine, {
      wants: () => true,
      failed() {},
      gone() {},
    });
    using memfd = createMemfd();
    q.push(1, { data: new Uint8Array(1), fds: [memfd] });
    assertEquals(q.flushSync(performance.now() + 20), false);
    assertEquals(q.length, 1);
    await q.stop();
    assertEquals(q.length, 0);
    mine.close();
    peer.close();
  });
});

Deno.test("`SendQueue` tells its owner when a queued send meets the peer's hang-up", async () => {
  await withoutFdLeak(async () => {
    const { mine, peer } = fullPair();
    const gone = Promise.withResolvers<void>();
    const q = new SendQueue(mine, {
      wants: () => true,
      failed() {},
      gone: gone.resolve,
    });
    q.push(1, { data: new Uint8Array(1) });
    peer.close();
    await within(gone.promise, 10_000, "gone");
    assertThrows(() => q.flushSync(performance.now()), IpcClosedError);
    await q.stop();
    mine.close();
  });
});
