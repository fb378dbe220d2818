import { assert, assertEquals } from "@std/assert";
import { MSG, MsgBuffers, SOCK, socketpair } from "../../ffi/socket.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import { close } from "../../ffi/unistd.ts";
import { withoutFdLeak } from "../_helpers.ts";

// The kernel behaviour behind the choice of SOCK_SEQPACKET
// (docs/unix_socket.md): after the peer closes, a seqpacket end reports
// hang-up and end of stream; a datagram end reports nothing.
function afterPeerClose(type: number): { revents: number; recv: number } {
  const sv = socketpair(SOCK.AF_UNIX, type | SOCK.SOCK_CLOEXEC);
  if (typeof sv === "number") throw new Error(`socketpair: ${sv}`);
  try {
    close(sv[1]);
    const p = new PollFds(1);
    p.set(0, sv[0], POLL.POLLIN | POLL.POLLRDHUP);
    p.poll(50);
    const rx = new MsgBuffers(64, 1);
    return { revents: p.revents(0), recv: rx.recvmsg(sv[0], MSG.MSG_DONTWAIT) };
  } finally {
    close(sv[0]);
  }
}

Deno.test("SOCK_SEQPACKET reports the peer's close; SOCK_DGRAM does not", async () => {
  await withoutFdLeak(() => {
    const seq = afterPeerClose(SOCK.SOCK_SEQPACKET);
    assert(seq.revents & POLL.POLLHUP, `seqpacket revents ${seq.revents}`);
    assertEquals(seq.recv, 0, "seqpacket: end of stream");
    const dgram = afterPeerClose(SOCK.SOCK_DGRAM);
    assertEquals(dgram.revents, 0, "dgram: no hang-up event");
    assertEquals(
      dgram.recv,
      -11,
      "dgram: EAGAIN, a reader would wait for ever",
    );
  });
});
