import { assert, assertEquals } from "@std/assert";
import {
  addressHalves,
  addressOf,
  receivedControl,
  SYNC_CALL_X86_64_CODE,
  SYNC_STEP,
  SyncBlock,
  syncCallStub,
} from "../../ffi/sync_call.ts";
import { MsgBuffers, SOCK, socketpair } from "../../ffi/socket.ts";
import { close } from "../../ffi/unistd.ts";
import { assembleText, HAS_BINUTILS } from "../_helpers.ts";

const X86 = Deno.build.arch === "x86_64";
const EAGAIN = 11;

Deno.test({
  name:
    "`SYNC_CALL_X86_64_CODE` matches ffi/sync_call_x86_64.S when re-assembled with as",
  ignore: !HAS_BINUTILS || !X86,
  fn: async () => {
    const src = new URL("../../ffi/sync_call_x86_64.S", import.meta.url)
      .pathname;
    assertEquals(await assembleText(src), SYNC_CALL_X86_64_CODE);
  },
});

/** A SEQPACKET socketpair that `using` closes. */
function pair(): [number, number] & Disposable {
  const sv = socketpair(SOCK.AF_UNIX, SOCK.SOCK_SEQPACKET | SOCK.SOCK_CLOEXEC);
  if (typeof sv === "number") throw new Error(`socketpair: ${sv}`);
  return Object.assign([sv[0], sv[1]] as [number, number], {
    [Symbol.dispose]() {
      close(sv[0]);
      close(sv[1]);
    },
  });
}

/** A 16-byte record whose cookie field (bytes 12-15) is `cookie`. */
function record(cookie: number): Uint8Array {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setUint32(12, cookie, true);
  return b;
}

Deno.test({
  name:
    "`SyncBlock.call()` sends, reads the reply, numbers it and gives the lock back in one call",
  ignore: !X86,
  fn() {
    const fn = syncCallStub();
    if (fn === null) throw new Error("no stub on x86_64");
    using sockets = pair();
    const [a, b] = sockets;
    const peer = new MsgBuffers(64, 1);
    peer.data.set(record(7));
    assertEquals(peer.sendmsg(b, 16, [], 0), 16); // the reply, queued
    const tx = new MsgBuffers(64, 1);
    tx.data.set([1, 2, 3]);
    tx.prepareSend(3, []);
    const rx = new MsgBuffers(64, 1);
    rx.prepareRecv();
    const shared = new Int32Array(new SharedArrayBuffer(8));
    shared[0] = 2; // the lock, held
    shared[1] = 5; // the next sequence number
    const block = new SyncBlock(fn);
    block.socket(a, -1);
    block.receiver(
      -1,
      0,
      0,
      addressOf(shared.subarray(0, 1)),
      addressOf(shared.subarray(1, 2)),
    );
    block.send(addressOf(tx.msghdr));
    block.recv(addressOf(rx.msghdr));
    block.wait(7, 0, 1000);
    assertEquals(rx.finishRecv(block.call()), 16);
    assertEquals(block.sent, 3);
    assertEquals(block.step, SYNC_STEP.SPIN);
    assertEquals(block.seq, 5);
    assert(block.released);
    assertEquals([...shared], [0, 6]);
    // The call reached the peer.
    assertEquals(peer.recvmsg(b, 0x40), 3);
    assertEquals([...peer.data.subarray(0, 3)], [1, 2, 3]);
  },
});

Deno.test({
  name:
    "`SyncBlock.call()` keeps the lock for another cookie, and times out with EAGAIN on an empty socket",
  ignore: !X86,
  fn() {
    const fn = syncCallStub()!;
    using sockets = pair();
    const [a, b] = sockets;
    const peer = new MsgBuffers(64, 1);
    peer.data.set(record(8));
    peer.sendmsg(b, 16, [], 0);
    const rx = new MsgBuffers(64, 1);
    rx.prepareRecv();
    const lock = new Int32Array(new SharedArrayBuffer(4));
    lock[0] = 2;
    const block = new SyncBlock(fn);
    block.socket(a, -1);
    block.receiver(-1, 0, 0, addressOf(lock), 0n);
    block.send(0n);
    block.recv(addressOf(rx.msghdr));
    block.wait(7, 0, 1000);
    assertEquals(block.call(), 16);
    assert(!block.released, "cookie 8 is not the reply to 7");
    assertEquals(lock[0], 2);
    assertEquals(block.seq, -1, "no counter given");
    block.wait(7, 4, 10);
    assertEquals(block.call(), -EAGAIN);
    assertEquals(block.step, SYNC_STEP.IDLE);
    assertEquals(block.spun, 4);
  },
});

Deno.test({
  name:
    "`SyncBlock.sendHalves()` sends from the header whose address addressHalves() split",
  ignore: !X86,
  fn() {
    const fn = syncCallStub();
    if (fn === null) throw new Error("no stub on x86_64");
    using sockets = pair();
    const [a, b] = sockets;
    const tx = new MsgBuffers(64, 1);
    tx.data.set([9, 8, 7, 6]);
    tx.prepareSend(4, []);
    const peer = new MsgBuffers(64, 1);
    peer.data.set(record(3));
    assertEquals(peer.sendmsg(b, 16, [], 0), 16); // the reply, queued
    const rx = new MsgBuffers(64, 1);
    rx.prepareRecv();
    const block = new SyncBlock(fn);
    block.socket(a, -1);
    block.receiver(-1, 0, 0, 0n, 0n);
    block.recv(addressOf(rx.msghdr));
    const [lo, hi] = addressHalves(addressOf(tx.msghdr));
    block.sendHalves(lo, hi);
    block.wait(3, 0, 1000);
    assertEquals(rx.finishRecv(block.call()), 16);
    assertEquals(block.sent, 4);
    assertEquals(peer.recvmsg(b, 0x40), 4);
    assertEquals([...peer.data.subarray(0, 4)], [9, 8, 7, 6]);
    // (0, 0): the next call only waits.
    block.sendHalves(0, 0);
    block.wait(-1, 0, 0);
    rx.prepareRecv();
    assertEquals(rx.finishRecv(block.call()), -EAGAIN);
    assertEquals(block.sent, 0);
    assertEquals(peer.recvmsg(b, 0x40), -EAGAIN);
  },
});

Deno.test("`addressHalves()` splits an address into int32 halves", () => {
  assertEquals(addressHalves(0n), [0, 0]);
  assertEquals(addressHalves(0x7f12_8000_0001n), [-0x7fff_ffff, 0x7f12]);
  const [lo, hi] = addressHalves(0xffff_ffff_ffffn);
  assertEquals([lo, hi], [-1, 0xffff]);
});

Deno.test(
  "`receivedControl()` tells a record that brought a descriptor from one that did not",
  () => {
    using sockets = pair();
    const [a, b] = sockets;
    const tx = new MsgBuffers(16, 1);
    const rx = new MsgBuffers(16, 1);
    assertEquals(tx.sendmsg(b, 1, [], 0), 1);
    assertEquals(rx.recvmsg(a, 0x40), 1);
    assertEquals(receivedControl(rx.msghdr), false);
    assertEquals(tx.sendmsg(b, 1, [b], 0), 1);
    assertEquals(rx.recvmsg(a, 0x40 | 0x40000000), 1);
    assertEquals(receivedControl(rx.msghdr), true);
    const got = rx.receivedFds();
    assertEquals(got.length, 1);
    for (const fd of got) close(fd);
  },
);
