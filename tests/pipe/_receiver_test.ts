import { assertEquals } from "@std/assert";
import { IpcUnixSocket, Process } from "../../mod.ts";
import { encodeMessage } from "../../src/pipe/ipc_message.ts";
import { Receiver } from "../../src/pipe/_receiver.ts";
import {
  epollTag,
  type ReceivedError,
  type ReceivedMessage,
  TAG_PIDFD,
  TAG_SOCKET,
  TAG_WAKE,
  tagIsCurrent,
  tagKind,
} from "../../src/pipe/_receiver_shared.ts";
import { warmUpWorkers, within, withoutFdLeak } from "../_helpers.ts";

const RECEIVER =
  new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href;

type Item = ReceivedMessage | ReceivedError;

/** A socket watched by the receiver, and what the receiver reports. */
function watched(pidfd = -1, window?: number) {
  const mine = new IpcUnixSocket();
  const peer = new IpcUnixSocket();
  peer.bind(mine.create());
  const items: Item[] = [];
  const hangup = Promise.withResolvers<"socket" | "process">();
  let arrived = Promise.withResolvers<void>();
  const receiver = Receiver.acquire();
  const id = receiver.add(mine.fd, pidfd, {
    onReceived(item) {
      items.push(item);
      arrived.resolve();
    },
    onHangup: hangup.resolve,
  }, window);
  return {
    mine,
    peer,
    items,
    receiver,
    id,
    hangup: hangup.promise,
    /** Waits until `n` items have arrived. */
    async until(n: number) {
      while (items.length < n) {
        await within(arrived.promise, 5000, `${n} items`);
        arrived = Promise.withResolvers<void>();
      }
    },
    close() {
      receiver.remove(id);
      mine.close();
      peer.close();
    },
  };
}

const send = (s: IpcUnixSocket, cmd: number) =>
  s.send(encodeMessage(cmd, 0, new Uint8Array([cmd]), []));

Deno.test("`Receiver` posts each message of a watched socket with the next sequence number", async () => {
  await warmUpWorkers(RECEIVER);
  await withoutFdLeak(async () => {
    const w = watched();
    for (const cmd of [1, 2, 3]) send(w.peer, cmd);
    await w.until(3);
    assertEquals(w.items.map((i) => i.seq), [0, 1, 2]);
    assertEquals(
      w.items.map((i) => i.type === "msg" && i.cmd),
      [1, 2, 3],
    );
    w.close();
  });
});

Deno.test("`Receiver.take()` stops it reading a socket until give(); sequence numbers stay shared", async () => {
  await warmUpWorkers(RECEIVER);
  await withoutFdLeak(async () => {
    const w = watched();
    w.receiver.take(w.id);
    send(w.peer, 1);
    await new Promise((r) => setTimeout(r, 50)); // time for a wrong read
    assertEquals(w.items.length, 0);
    // The holder reads it and takes number 0 itself.
    using m = w.mine.receive({ timeout: 1000 });
    assertEquals(m.data[8], 1);
    assertEquals(w.receiver.nextSeq(w.id), 0);
    send(w.peer, 2);
    assertEquals(w.receiver.give(w.id), false);
    await w.until(1);
    assertEquals(w.items[0].seq, 1);
    w.close();
  });
});

Deno.test("`Receiver` reports the hang-up after posting what the peer sent before it", async () => {
  await warmUpWorkers(RECEIVER);
  await withoutFdLeak(async () => {
    const w = watched();
    send(w.peer, 1);
    w.peer.close();
    assertEquals(await within(w.hangup, 5000, "hang-up"), "socket");
    assertEquals(w.items.length, 1);
    w.close();
  });
});

Deno.test("`Receiver` reports the end of the peer's process by its pidfd", async () => {
  await warmUpWorkers(RECEIVER);
  await withoutFdLeak(async () => {
    await using child = Process.spawn("/bin/true");
    using pidfd = child.dupPidfd();
    const w = watched(pidfd.fd);
    assertEquals(await within(w.hangup, 5000, "exit"), "process");
    w.close();
  });
});

/** Waits a moment for posts that must not come. */
const settle = () => new Promise((r) => setTimeout(r, 50));

Deno.test("`Receiver` flow control: it reads at most `window` items ahead of release(), then pauses until half are released", async () => {
  await warmUpWorkers(RECEIVER);
  await withoutFdLeak(async () => {
    const w = watched(-1, 4);
    for (let cmd = 1; cmd <= 20; cmd++) send(w.peer, cmd);
    await w.until(4);
    await settle();
    assertEquals(w.items.length, 4);
    assertEquals(w.receiver.paused(w.id), true);
    w.receiver.release(w.id); // 3 in flight: above half, still paused
    await settle();
    assertEquals(w.items.length, 4);
    w.receiver.release(w.id); // 2 in flight: read again, up to 4
    await w.until(6);
    await settle();
    assertEquals(w.items.length, 6);
    // Release as they come: all 20 arrive, in order.
    for (let released = 2; released < 20; released++) {
      await w.until(Math.min(20, released + 3));
      w.receiver.release(w.id);
    }
    await w.until(20);
    assertEquals(w.items.map((i) => i.seq), [...Array(20).keys()]);
    w.close();
  });
});

Deno.test("`Receiver` flow control: an exit seen while paused is reported after everything sent before it", async () => {
  await warmUpWorkers(RECEIVER);
  await withoutFdLeak(async () => {
    await using child = Process.spawn("/bin/true");
    using pidfd = child.dupPidfd();
    await child.exited;
    const w = watched(pidfd.fd, 2);
    let hungUp = false;
    w.hangup.then(() => hungUp = true);
    for (let cmd = 1; cmd <= 5; cmd++) send(w.peer, cmd);
    await w.until(2);
    await settle();
    assertEquals([w.items.length, hungUp], [2, false]);
    for (let n = 2; n <= 5; n++) {
      w.receiver.release(w.id);
      await w.until(n);
    }
    w.receiver.release(w.id);
    w.receiver.release(w.id);
    assertEquals(await within(w.hangup, 5000, "exit report"), "process");
    assertEquals(w.items.length, 5);
    w.close();
  });
});

Deno.test("`Receiver`: an exit event of a removed pipe never hangs up the pipe that reuses its index", async () => {
  await warmUpWorkers(RECEIVER);
  await withoutFdLeak(async () => {
    await using child = Process.spawn("/bin/true");
    using exited = child.dupPidfd();
    await child.exited; // its pidfd stays readable: an event at every add
    // A pipe kept throughout, so the receiver does not stop in between.
    const keep = watched();
    const receiver = keep.receiver;
    const live: { sock: IpcUnixSocket; peer: IpcUnixSocket; id: number }[] = [];
    let falseHangups = 0;
    for (let i = 0; i < 500; i++) {
      // A pipe whose peer has exited, removed at once (its exit event may
      // be in the receiver's hands), then a live pipe at the same index.
      using pidfd = exited.dup();
      const gone = new IpcUnixSocket();
      const gonePeer = gone.create();
      receiver.remove(
        receiver.add(gone.fd, pidfd.fd, { onReceived() {}, onHangup() {} }),
      );
      gone.close();
      gonePeer.close();
      const sock = new IpcUnixSocket();
      const peer = new IpcUnixSocket();
      peer.bind(sock.create());
      const id = receiver.add(sock.fd, -1, {
        onReceived() {},
        onHangup: () => falseHangups++,
      });
      live.push({ sock, peer, id });
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await new Promise((r) => setTimeout(r, 200)); // time for a wrong report
    assertEquals(falseHangups, 0);
    for (const p of live) {
      receiver.remove(p.id);
      p.sock.close();
      p.peer.close();
    }
    keep.close();
  });
});

Deno.test("receiver epoll tags carry the kind and the generation, across wrap-around", () => {
  for (const gen of [0, 1, 5, 2 ** 29, 2 ** 31 - 1, -(2 ** 31)]) {
    for (const kind of [TAG_SOCKET, TAG_PIDFD, TAG_WAKE]) {
      const hi = epollTag(kind, gen);
      assertEquals(tagKind(hi), kind);
      assertEquals(tagIsCurrent(hi, gen), true);
      assertEquals(tagIsCurrent(hi, gen + 1), false);
    }
  }
});
