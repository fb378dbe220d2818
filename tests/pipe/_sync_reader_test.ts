import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertThrows,
} from "@std/assert";
import {
  createMemfd,
  IpcTimeoutError,
  IpcUnixSocket,
  OwnedFd,
  Process,
  readFd,
} from "../../mod.ts";
import { encodeMessage } from "../../src/pipe/ipc_message.ts";
import { readReply, type SyncRead } from "../../src/pipe/_sync_reader.ts";
import type {
  ReceivedError,
  ReceivedMessage,
} from "../../src/pipe/_receiver_shared.ts";
import { isCloexec, withoutFdLeak } from "../_helpers.ts";

/** A socketpair: `mine` is read by the sync reader, `peer` sends. */
function pair(): { mine: IpcUnixSocket; peer: IpcUnixSocket } & Disposable {
  const mine = new IpcUnixSocket();
  const peer = new IpcUnixSocket();
  peer.bind(mine.create());
  return {
    mine,
    peer,
    [Symbol.dispose]() {
      mine.close();
      peer.close();
    },
  };
}

function reading(
  fd: number,
  cookie: number,
  kept: (ReceivedMessage | ReceivedError)[],
  more: Partial<SyncRead> = {},
): SyncRead {
  let seq = 0;
  return {
    fd,
    pidfd: -1,
    id: 0,
    cookie,
    deadline: performance.now() + 5000,
    timeout: 5000,
    spin: 0,
    action: "Cannot call 1",
    nextSeq: () => seq++,
    keep: (item) => kept.push(item),
    ...more,
  };
}

Deno.test("`readReply()` returns its reply and keeps, numbered in arrival order, what came before it", async () => {
  await withoutFdLeak(() => {
    using p = pair();
    p.peer.send(encodeMessage(100, 0, new Uint8Array([1]), []));
    p.peer.send(encodeMessage(1, 8, new Uint8Array([2]), [])); // another call's
    p.peer.send({ data: new Uint8Array(3) }); // shorter than the header
    p.peer.send(encodeMessage(1, 9, new Uint8Array([3]), []));
    p.peer.send(encodeMessage(101, 0, new Uint8Array([4]), []));
    const kept: (ReceivedMessage | ReceivedError)[] = [];
    const reply = readReply(reading(p.mine.fd, 9, kept))!;
    assertEquals([reply.cookie, reply.seq], [9, 3]);
    assertEquals(new Uint8Array(reply.buffer), new Uint8Array([3]));
    assertEquals(kept.map((k) => k.seq), [0, 1, 2]);
    assertEquals(kept.map((k) => k.type), ["msg", "msg", "error"]);
    assertEquals((kept[2] as ReceivedError).reason, "short-header");
    // The event after the reply is still queued for the receiver.
    using next = p.mine.receive({ timeout: 1000 });
    assertEquals(next.data.length, 9);
  });
});

Deno.test("`readReply()` passes the reply's descriptors, close-on-exec", async () => {
  await withoutFdLeak(() => {
    using p = pair();
    using memfd = createMemfd({ data: new TextEncoder().encode("frame") });
    p.peer.send(encodeMessage(1, 4, new Uint8Array(0), [memfd]));
    const reply = readReply(reading(p.mine.fd, 4, []))!;
    assertEquals(reply.fds.length, 1);
    assert(isCloexec(reply.fds[0]));
    using got = new OwnedFd(reply.fds[0]);
    assertEquals(new TextDecoder().decode(readFd(got)), "frame");
  });
});

Deno.test("`readReply()` throws IpcTimeoutError at its deadline, spinning or not", async () => {
  await withoutFdLeak(() => {
    using p = pair();
    for (const spin of [0, 200]) {
      const e = assertThrows(
        () =>
          readReply(reading(p.mine.fd, 1, [], {
            deadline: performance.now() + 20,
            timeout: 20,
            spin,
          })),
        IpcTimeoutError,
        "no reply to cookie 1 within 20 ms",
      );
      assertEquals(e.timeout, 20);
    }
  });
});

Deno.test("`readReply()` returns null at the peer's hang-up, after keeping what it sent first", async () => {
  await withoutFdLeak(() => {
    using p = pair();
    p.peer.send(encodeMessage(100, 0, new Uint8Array(0), []));
    p.peer.close();
    const kept: (ReceivedMessage | ReceivedError)[] = [];
    assertEquals(readReply(reading(p.mine.fd, 1, kept)), null);
    assertEquals(kept.length, 1);
  });
});

Deno.test("`readReply()` returns null when the peer's process ends, its socket still open", async () => {
  await withoutFdLeak(async () => {
    using p = pair();
    await using child = Process.spawn("/bin/true");
    using pidfd = child.dupPidfd();
    assertEquals(
      readReply(reading(p.mine.fd, 1, [], { pidfd: pidfd.fd })),
      null,
    );
    assertInstanceOf(await child.exited, Object);
  });
});
