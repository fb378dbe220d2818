import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertThrows,
} from "@std/assert";
import {
  createMemfd,
  fdSize,
  IpcClosedError,
  IpcErrorEvent,
  IpcMessageEvent,
  IpcProtocolError,
  IpcTimeoutError,
  IpcUnixSocket,
  OwnedFd,
  readFd,
  SyscallError,
} from "../../mod.ts";
import { MSG, MsgBuffers, SOCK, socketpair } from "../../ffi/socket.ts";
import { F, fcntl, memfdCreate, MFD } from "../../ffi/unistd.ts";
import { gettid } from "../../ffi/spawn.ts";
import { FLAG_MEMFD, writeHeader } from "../../src/ipc/_frame.ts";
import {
  isCloexec,
  isOpen,
  openFds,
  pattern,
  warmUpWorkers,
  within,
  withoutFdLeak,
} from "../_helpers.ts";

const enc = new TextEncoder();

/** Two bound ends in this thread. */
function pair(opts = {}): [IpcUnixSocket, IpcUnixSocket] {
  const a = new IpcUnixSocket(opts);
  const b = new IpcUnixSocket(opts);
  b.bind(a.create());
  return [a, b];
}

/** A raw peer: the other end as a plain fd, written with bare sendmsg. */
function rawPair(opts = {}): { sock: IpcUnixSocket; raw: OwnedFd } {
  const sock = new IpcUnixSocket(opts);
  return { sock, raw: sock.create() };
}

function rawSend(raw: OwnedFd, bytes: Uint8Array, fds: number[] = []): void {
  const tx = new MsgBuffers(bytes.length, 253);
  tx.data.set(bytes);
  const r = tx.sendmsg(raw.fd, bytes.length, fds, MSG.MSG_DONTWAIT);
  assertEquals(r, bytes.length, `raw sendmsg returned ${r}`);
}

function frame(size: number, nfds: number, flags = 0, body?: Uint8Array) {
  const b = new Uint8Array(8 + (body?.length ?? 0));
  writeHeader(b, size, nfds, flags);
  if (body) b.set(body, 8);
  return b;
}

async function startWorker(peer: OwnedFd): Promise<Worker> {
  const w = new Worker(
    new URL("../fixtures/socket_worker.ts", import.meta.url).href,
    { type: "module" },
  );
  const ready = new Promise((resolve, reject) => {
    w.onmessage = (e) => resolve(e.data);
    w.onerror = (e) => {
      e.preventDefault();
      reject(e.error ?? new Error(e.message));
    };
  });
  w.postMessage({ fd: peer.release() });
  assertEquals(await within(ready, 10_000, "worker ready"), "ready");
  return w;
}

async function stopWorker(w: Worker, sock: IpcUnixSocket): Promise<unknown> {
  const done = new Promise((resolve) => w.onmessage = (e) => resolve(e.data));
  sock.close(); // the worker sees the hang-up and exits its loop
  const result = await within(done, 10_000, "worker done");
  w.terminate();
  return result;
}

Deno.test("IpcUnixSocket.send() and receive() carry bytes both ways in one thread", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    a.send({ data: enc.encode("ping") });
    using m1 = b.receive({ timeout: 1000 });
    assertEquals(new TextDecoder().decode(m1.data), "ping");
    b.send({ data: enc.encode("pong") });
    using m2 = a.receive({ timeout: 1000 });
    assertEquals(new TextDecoder().decode(m2.data), "pong");
    assertEquals(m2.fds.length, 0);
  });
});

Deno.test("IpcUnixSocket round trips through a Worker thread", async (t) => {
  await warmUpWorkers(
    new URL("../fixtures/socket_worker.ts", import.meta.url).href,
  );
  await withoutFdLeak(async () => {
    const sock = new IpcUnixSocket();
    const w = await startWorker(sock.create());

    await t.step("reverse bytes", () => {
      const data = pattern(1000);
      sock.send({ data: Uint8Array.of(1, ...data) });
      using reply = sock.receive({ timeout: 5000 });
      assertEquals(reply.data, data.slice().reverse());
    });

    await t.step("fds are readable on the other side (sum of sizes)", () => {
      const sizes = [1, 4096, 12345, 65536, 3 << 20];
      const fds = sizes.map((n, i) => createMemfd({ data: pattern(n, i + 1) }));
      try {
        sock.send({ data: Uint8Array.of(2), fds });
        using reply = sock.receive({ timeout: 5000 });
        const total = new DataView(reply.data.buffer).getBigUint64(0, true);
        assertEquals(Number(total), sizes.reduce((s, n) => s + n, 0));
      } finally {
        fds.forEach((fd) => fd.close());
      }
    });

    await t.step("fd order is preserved", () => {
      const fds = ["alpha", "beta", "gamma", "delta"].map((s) =>
        createMemfd({ data: enc.encode(s) })
      );
      try {
        sock.send({ data: Uint8Array.of(3), fds });
        using reply = sock.receive({ timeout: 5000 });
        assertEquals(
          new TextDecoder().decode(reply.data),
          "alphabetagammadelta",
        );
      } finally {
        fds.forEach((fd) => fd.close());
      }
    });

    await t.step(
      "echoed fds come back as new descriptors on the same files",
      () => {
        using fd = createMemfd({ data: enc.encode("same file") });
        sock.send({ data: Uint8Array.of(4), fds: [fd] });
        using reply = sock.receive({ timeout: 5000 });
        assertEquals(reply.fds.length, 1);
        assert(reply.fds[0].fd !== fd.fd);
        assertEquals(
          new TextDecoder().decode(readFd(reply.fds[0])),
          "same file",
        );
      },
    );

    assertEquals(await stopWorker(w, sock), { served: 4 });
  });
});

Deno.test("IpcUnixSocket carries empty messages, with and without fds", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    a.send({});
    a.send({ data: new Uint8Array(0) });
    using fd = createMemfd({ data: enc.encode("x") });
    a.send({ fds: [fd] });
    using m1 = b.receive({ timeout: 1000 });
    using m2 = b.receive({ timeout: 1000 });
    using m3 = b.receive({ timeout: 1000 });
    assertEquals([m1.data.length, m1.fds.length], [0, 0]);
    assertEquals([m2.data.length, m2.fds.length], [0, 0]);
    assertEquals([m3.data.length, m3.fds.length], [0, 1]);
    assertEquals(readFd(m3.fds[0]), enc.encode("x"));
  });
});

Deno.test("IpcUnixSocket.send() has no size cliff: 128 KiB inline, 128 KiB + 1 and 16 MiB via memfd", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    for (const n of [65536, 131071, 131072, 131073, 1 << 20, 16 << 20]) {
      const data = pattern(n, n);
      using fd = createMemfd({ data: enc.encode("side") });
      a.send({ data, fds: [fd] });
      using m = b.receive({ timeout: 5000 });
      assertEquals(m.data.length, n);
      assertEquals(m.data, data, `payload of ${n} bytes differs`);
      assertEquals(m.fds.length, 1, `fds with ${n} bytes`);
      assertEquals(readFd(m.fds[0]), enc.encode("side"));
    }
  });
});

Deno.test("IpcUnixSocket.send() passes 253 fds and refuses 254 before sending anything", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    using fd = createMemfd({ data: enc.encode("m") });
    a.send({ fds: Array(253).fill(fd) });
    using m = b.receive({ timeout: 1000 });
    assertEquals(m.fds.length, 253);
    assertEquals(new Set(m.fds.map((f) => f.fd)).size, 253);
    assertThrows(() => a.send({ fds: Array(254).fill(fd) }), RangeError, "254");
    assertThrows(
      () => a.send({ data: new Uint8Array(140_000), fds: Array(253).fill(fd) }),
      RangeError,
      "252",
    );
    assertThrows(() => b.receive({ timeout: 0 }), IpcTimeoutError);
  });
});

Deno.test("IpcUnixSocket: own ends and received fds are close-on-exec", async () => {
  await withoutFdLeak(() => {
    const a = new IpcUnixSocket();
    using _a = a;
    using peerFd = a.create();
    assert(isCloexec(a.fd), "kept end");
    assert(isCloexec(peerFd.fd), "returned end");
    const b = new IpcUnixSocket();
    using _b = b;
    b.bind(peerFd.release());
    // A descriptor without FD_CLOEXEC on the sending side...
    const plain = memfdCreate("plain", MFD.MFD_ALLOW_SEALING);
    using plainFd = new OwnedFd(plain);
    assert(!isCloexec(plain));
    a.send({ fds: [plainFd] });
    using m = b.receive({ timeout: 1000 });
    // ...arrives with it (MSG_CMSG_CLOEXEC).
    assert(isCloexec(m.fds[0].fd));
  });
});

Deno.test("IpcUnixSocket.receive() throws IpcClosedError once the peer closed, after delivering what it sent", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    b.send({ data: enc.encode("last words") });
    b.close();
    using m = a.receive(); // no timeout: must not hang
    assertEquals(new TextDecoder().decode(m.data), "last words");
    assertThrows(() => a.receive(), IpcClosedError, "peer closed");
    assertEquals(a.state, "peer-closed");
    const e = assertThrows(
      () => a.send({ data: enc.encode("x") }),
      IpcClosedError,
    );
    assert(e.message.includes("peer closed"));
  });
});

Deno.test("IpcUnixSocket.send() to a vanished peer throws IpcClosedError (EPIPE cause)", async () => {
  await withoutFdLeak(() => {
    const a = new IpcUnixSocket();
    using _a = a;
    a.create().close();
    const e = assertThrows(
      () => a.send({ data: enc.encode("x") }),
      IpcClosedError,
    );
    assertInstanceOf(e.cause, SyscallError);
    assertEquals((e.cause as SyscallError).code, "EPIPE");
    assertEquals(a.state, "peer-closed");
  });
});

Deno.test("IpcUnixSocket methods on a closed socket throw IpcClosedError; close() is idempotent", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _b = b;
    const fd = a.fd;
    a.close();
    a.close();
    assert(!isOpen(fd) || fd === b.fd);
    assertEquals(a.state, "closed");
    assertThrows(() => a.send({}), IpcClosedError, "closed");
    assertThrows(() => a.receive({ timeout: 0 }), IpcClosedError, "closed");
  });
});

Deno.test("IpcUnixSocket.send() waits for room up to its timeout, then throws without half-sending", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    const data = pattern(4096);
    let sent = 0;
    const t0 = performance.now();
    const e = assertThrows(() => {
      for (;;) {
        a.send({ data }, { timeout: 50 });
        sent++;
      }
    }, IpcTimeoutError);
    assert(performance.now() - t0 >= 50, "gave up before its deadline");
    assertEquals(e.timeout, 50);
    assert(sent > 0);
    // Everything accepted arrives whole; nothing more.
    for (let i = 0; i < sent; i++) {
      using m = b.receive({ timeout: 1000 });
      assertEquals(m.data, data);
    }
    assertThrows(() => b.receive({ timeout: 0 }), IpcTimeoutError);
    // Once read, the socket accepts again, and timeout 0 fails at once.
    a.send({ data }, { timeout: 0 });
    using again = b.receive({ timeout: 1000 });
    assertEquals(again.data, data);
  });
});

Deno.test("IpcUnixSocket.receive() throws IpcTimeoutError when nothing arrives", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    const t0 = performance.now();
    const e = assertThrows(() => a.receive({ timeout: 30 }), IpcTimeoutError);
    assert(performance.now() - t0 >= 29);
    assertEquals(e.timeout, 30);
  });
});

Deno.test("IpcUnixSocket rejects too many fds (MSG_CTRUNC), closes those that arrived, and goes on", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair({ maxFds: 2 });
    using _a = a;
    using _b = b;
    using fd = createMemfd();
    const before = openFds();
    a.send({ fds: [fd, fd, fd] });
    const e = assertThrows(
      () => b.receive({ timeout: 1000 }),
      IpcProtocolError,
    );
    assertEquals(e.reason, "fds-truncated");
    assertEquals(openFds(), before, "the fds that did arrive were not closed");
    a.send({ data: enc.encode("next"), fds: [fd, fd] });
    using m = b.receive({ timeout: 1000 });
    assertEquals(m.data, enc.encode("next"));
    assertEquals(m.fds.length, 2);
  });
});

Deno.test("IpcUnixSocket rejects bad frames from a raw peer, closes their fds, and delivers the next one", async (t) => {
  await withoutFdLeak(async () => {
    const { sock, raw } = rawPair({ maxMessageSize: 1 << 20 });
    using _s = sock;
    using _r = raw;
    using memfd = createMemfd({ data: enc.encode("payload") });

    const cases: [string, string, () => void][] = [
      [
        "short-header",
        "a 3-byte record",
        () => rawSend(raw, Uint8Array.of(1, 2, 3)),
      ],
      [
        "short-header",
        "an empty record with an fd",
        () => rawSend(raw, new Uint8Array(0), [memfd.fd]),
      ],
      [
        "length-mismatch",
        "declared 10, sent 4",
        () => rawSend(raw, frame(10, 0, 0, pattern(4))),
      ],
      [
        "length-mismatch",
        "declared 2, sent 4",
        () => rawSend(raw, frame(2, 0, 0, pattern(4))),
      ],
      [
        "fd-count-mismatch",
        "declared 2 fds, sent 1",
        () => rawSend(raw, frame(0, 2), [memfd.fd]),
      ],
      [
        "fd-count-mismatch",
        "declared 0 fds, sent 2",
        () => rawSend(raw, frame(0, 0), [memfd.fd, memfd.fd]),
      ],
      ["bad-version", "version byte 9", () => {
        const f = frame(0, 0);
        f[7] = 9;
        rawSend(raw, f);
      }],
      [
        "bad-version",
        "unknown flag bit",
        () => rawSend(raw, frame(0, 0, 0x80)),
      ],
      [
        "too-large",
        "declares 4 GiB - 1",
        () => rawSend(raw, frame(0xffffffff, 0, FLAG_MEMFD), [memfd.fd]),
      ],
      [
        "unsealed-payload",
        "memfd flag with an unsealed memfd",
        () => rawSend(raw, frame(7, 0, FLAG_MEMFD), [memfd.fd]),
      ],
      [
        "fd-count-mismatch",
        "memfd flag without fd",
        () => rawSend(raw, frame(7, 0, FLAG_MEMFD)),
      ],
      [
        "data-truncated",
        "a record over 128 KiB + header",
        () => rawSend(raw, frame(140_000, 0, 0, pattern(140_000)), [memfd.fd]),
      ],
    ];
    for (const [reason, what, send] of cases) {
      await t.step(`${reason}: ${what}`, () => {
        const before = openFds();
        send();
        rawSend(raw, frame(4, 1, 0, enc.encode("good")), [memfd.fd]);
        const e = assertThrows(
          () => sock.receive({ timeout: 1000 }),
          IpcProtocolError,
        );
        assertEquals(e.reason, reason);
        assertEquals(openFds(), before, "fds of the bad frame were not closed");
        using good = sock.receive({ timeout: 1000 });
        assertEquals(good.data, enc.encode("good"));
        assertEquals(readFd(good.fds[0]), enc.encode("payload"));
      });
    }

    await t.step("length-mismatch: sealed memfd of another size", () => {
      using sealed = createMemfd({ data: pattern(100), seal: true });
      rawSend(raw, frame(99, 0, FLAG_MEMFD), [sealed.fd]);
      const e = assertThrows(
        () => sock.receive({ timeout: 1000 }),
        IpcProtocolError,
      );
      assertEquals(e.reason, "length-mismatch");
    });
  });
});

Deno.test("IpcUnixSocket delivers message events in order without blocking the event loop", async () => {
  await withoutFdLeak(async () => {
    const [a, b] = pair();
    using _b = b;
    const got: number[] = [];
    const all = Promise.withResolvers<void>();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    a.addEventListener("message", (e) => {
      assertInstanceOf(e, IpcMessageEvent);
      using p = e.message;
      got.push(p.data[0]);
      if (got.length === 100) all.resolve();
    });
    await new Promise((r) => setTimeout(r, 20)); // idle: the loop keeps running
    assert(ticks > 0, "event loop starved while waiting for messages");
    for (let i = 0; i < 100; i++) b.send({ data: Uint8Array.of(i) });
    await within(all.promise, 5000, "100 messages");
    clearInterval(timer);
    assertEquals(got, [...Array(100).keys()]);
    assertThrows(() => a.receive({ timeout: 0 }), TypeError, "events");
    await a[Symbol.asyncDispose]();
  });
});

Deno.test("IpcUnixSocket dispatches error events for bad frames and a close event on hang-up", async () => {
  await withoutFdLeak(async () => {
    const { sock, raw } = rawPair();
    const events: string[] = [];
    const closed = Promise.withResolvers<void>();
    sock.addEventListener("message", (e) => {
      using p = e.message;
      events.push(`message:${new TextDecoder().decode(p.data)}`);
    });
    sock.addEventListener("error", (e) => {
      assertInstanceOf(e, IpcErrorEvent);
      events.push(`error:${(e.error as IpcProtocolError).reason}`);
    });
    sock.addEventListener("close", () => closed.resolve());
    rawSend(raw, Uint8Array.of(1));
    rawSend(raw, frame(2, 0, 0, enc.encode("ok")));
    raw.close();
    await within(closed.promise, 5000, "close event");
    assertEquals(events, ["error:short-header", "message:ok"]);
    assertEquals(sock.state, "peer-closed");
    await sock[Symbol.asyncDispose]();
  });
});

Deno.test("IpcUnixSocket.close() during event delivery releases the fd without waiting for the peer", async () => {
  await withoutFdLeak(async () => {
    const [a, b] = pair();
    using _b = b;
    const fd = a.fd;
    a.addEventListener("message", () => {});
    await new Promise((r) => setTimeout(r, 10)); // the wait is now pending
    a.close();
    await within(a.released, 2000, "release after close");
    assert(!isOpen(fd) || fd === b.fd);
    // The peer sees the hang-up.
    assertThrows(() => b.receive({ timeout: 1000 }), IpcClosedError);
  });
});

Deno.test("IpcUnixSocket.bind() and create() refuse bad input", async () => {
  await withoutFdLeak(() => {
    using memfd = createMemfd();
    assertThrows(
      () => new IpcUnixSocket().bind(memfd),
      TypeError,
      "not a socket",
    );
    assert(memfd.isValid, "ownership taken although bind failed");
    const dgram = socketpair(SOCK.AF_UNIX, SOCK.SOCK_DGRAM | SOCK.SOCK_CLOEXEC);
    if (typeof dgram === "number") throw new Error(`socketpair: ${dgram}`);
    using d0 = new OwnedFd(dgram[0]);
    using _d1 = new OwnedFd(dgram[1]);
    assertThrows(
      () => new IpcUnixSocket().bind(d0),
      TypeError,
      "SOCK_SEQPACKET",
    );
    assertThrows(() => new IpcUnixSocket().bind(-1), RangeError);
    const s = new IpcUnixSocket();
    using _s = s;
    using peer = s.create();
    assertThrows(() => s.create(), TypeError, "open");
    assertThrows(() => s.bind(peer), TypeError, "open");
    assertThrows(() => new IpcUnixSocket({ maxFds: 0 }), RangeError);
    assertThrows(() => new IpcUnixSocket({ maxFds: 254 }), RangeError);
    assertThrows(() => new IpcUnixSocket().send({}), TypeError, "not bound");
  });
});

Deno.test("IpcUnixSocket.send() refuses bad payloads and options with typed errors", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    const closed = createMemfd();
    closed.close();
    assertThrows(() => a.send({ fds: [closed] }), TypeError, "closed");
    assertThrows(() => a.send({ fds: [-3] }), RangeError);
    assertThrows(() => a.send({}, { timeout: -1 }), RangeError);
    assertThrows(
      () => a.send({ data: "x" as unknown as Uint8Array }),
      TypeError,
    );
    // A number that is not an open fd: the kernel says EBADF, nothing sent.
    const e = assertThrows(() => a.send({ fds: [999_999] }), SyscallError);
    assertEquals(e.code, "EBADF");
    assertEquals(e.syscall, "sendmsg");
    assertThrows(() => b.receive({ timeout: 0 }), IpcTimeoutError);
  });
});

Deno.test("IpcUnixSocket payload disposal closes fds not taken; released ones stay open", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    using fd = createMemfd({ data: pattern(10) });
    a.send({ fds: [fd, fd] });
    let kept: OwnedFd;
    let dropped: number;
    {
      using m = b.receive({ timeout: 1000 });
      kept = new OwnedFd(m.fds[0].release());
      dropped = m.fds[1].fd;
    }
    assert(isOpen(kept.fd));
    assert(!isOpen(dropped) || dropped === kept.fd);
    assertEquals(fdSize(kept), 10);
    kept.close();
  });
});

Deno.test("IpcUnixSocket.send() sends a list of chunks as one message, inline and via memfd", async () => {
  await withoutFdLeak(() => {
    const [a, b] = pair();
    using _a = a;
    using _b = b;
    for (const sizes of [[3, 0, 5], [40_000, 40_000], [1, 200_000]]) {
      const parts = sizes.map((n, i) => pattern(n, i + 7));
      a.send({ data: parts });
      using m = b.receive({ timeout: 1000 });
      const all = new Uint8Array(sizes.reduce((s, n) => s + n, 0));
      let off = 0;
      for (const p of parts) {
        all.set(p, off);
        off += p.length;
      }
      assertEquals(m.data, all);
    }
    assertThrows(
      () => a.send({ data: [new Uint8Array(1), "x" as unknown as Uint8Array] }),
      TypeError,
    );
  });
});

Deno.test("IpcUnixSocket.receive({ spin }) takes a message during the spin window and still honours its timeout", async () => {
  await warmUpWorkers(
    new URL("../fixtures/socket_worker.ts", import.meta.url).href,
  );
  await withoutFdLeak(async () => {
    const sock = new IpcUnixSocket();
    const w = await startWorker(sock.create());
    // The worker replies while we spin (a generous 200 ms window).
    sock.send({ data: Uint8Array.of(1, 5, 6) });
    using m = sock.receive({ spin: 200_000, timeout: 5000 });
    assertEquals(m.data, Uint8Array.of(6, 5));
    const t0 = performance.now();
    assertThrows(
      () => sock.receive({ spin: 5000, timeout: 20 }),
      IpcTimeoutError,
    );
    assert(performance.now() - t0 >= 19);
    assertThrows(() => sock.receive({ spin: -1 }), RangeError);
    assertEquals(await stopWorker(w, sock), { served: 1 });
  });
});

Deno.test("IpcUnixSocket still delivers what the peer sent, then the close event, when a send met the peer's end first", async () => {
  await withoutFdLeak(async () => {
    // Event delivery.
    const [a, b] = pair();
    const got: string[] = [];
    const closed = Promise.withResolvers<void>();
    a.addEventListener("message", (e) => {
      using p = e.message;
      got.push(new TextDecoder().decode(p.data));
    });
    a.addEventListener("close", () => closed.resolve());
    b.send({ data: enc.encode("one") });
    b.send({ data: enc.encode("two") });
    b.close();
    assertThrows(() => a.send({ data: enc.encode("x") }), IpcClosedError);
    await within(closed.promise, 2000, "close event");
    assertEquals(got, ["one", "two"]);
    await a[Symbol.asyncDispose]();
    // Blocking receive.
    const [c, d] = pair();
    using _c = c;
    d.send({ data: enc.encode("last") });
    d.close();
    assertThrows(() => c.send({}), IpcClosedError);
    using m = c.receive({ timeout: 1000 });
    assertEquals(m.data, enc.encode("last"));
    assertThrows(() => c.receive({ timeout: 1000 }), IpcClosedError);
  });
});

Deno.test("IpcUnixSocket.bind() makes an adopted end close-on-exec again", async () => {
  await withoutFdLeak(() => {
    const a = new IpcUnixSocket();
    using _a = a;
    const end = a.create();
    const n = end.release();
    fcntl(n, F.F_SETFD, 0); // as after an exec that kept it
    assert(!isCloexec(n));
    using b = new IpcUnixSocket();
    b.bind(n);
    assert(isCloexec(n));
  });
});

Deno.test("IpcUnixSocket.receive() retries EINTR: signals while it waits do not end the wait", async () => {
  const url = new URL("../fixtures/eintr_worker.ts", import.meta.url).href;
  await warmUpWorkers(url);
  let signals = 0;
  const onSignal = () => signals++;
  Deno.addSignalListener("SIGUSR1", onSignal);
  try {
    await withoutFdLeak(async () => {
      using sock = new IpcUnixSocket();
      const w = new Worker(url, { type: "module" });
      const ready = new Promise((r) => w.onmessage = r);
      w.postMessage({ fd: sock.create().release(), tid: gettid() });
      await within(ready, 10_000, "worker ready");
      // Blocks in poll(2) on this thread while the signals arrive.
      using m = sock.receive({ timeout: 5000 });
      assertEquals(m.data, Uint8Array.of(42));
      await new Promise((r) => setTimeout(r, 20)); // let handlers run
      w.terminate();
    });
  } finally {
    Deno.removeSignalListener("SIGUSR1", onSignal);
  }
  assert(signals > 0, "no signal was delivered during the wait");
});
