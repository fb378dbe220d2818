// How many non-blocking reads the one-crossing stub makes per µs of
// spinning: measured once per thread on an empty socketpair, so that a spin
// window given in µs becomes a count of reads (the stub has no clock).
import { MsgBuffers, SOCK, socketpair } from "../../ffi/socket.ts";
import { addressOf, type SyncBlock } from "../../ffi/sync_call.ts";
import { close } from "../../ffi/unistd.ts";

/** Reads timed per measurement. */
const CALIBRATION_READS = 256;
/** Measurements; the fastest counts (the first one runs cold). */
const CALIBRATION_RUNS = 3;
/** Used when the measurement fails: ~1 µs per read, as measured here. */
const FALLBACK_READS_PER_US = 1;

/** Non-blocking reads per µs through `block`'s stub. */
export function calibrateSpin(block: SyncBlock): number {
  const sv = socketpair(SOCK.AF_UNIX, SOCK.SOCK_SEQPACKET | SOCK.SOCK_CLOEXEC);
  if (typeof sv === "number") return FALLBACK_READS_PER_US;
  try {
    const rx = new MsgBuffers(16, 1);
    rx.prepareRecv();
    block.socket(sv[0], -1);
    block.receiver(-1, 0, 0, 0n, 0n);
    block.send(0n);
    block.recv(addressOf(rx.msghdr));
    block.wait(-1, CALIBRATION_READS, 0);
    let best = Infinity;
    for (let i = 0; i < CALIBRATION_RUNS; i++) {
      const t0 = performance.now();
      block.call();
      best = Math.min(best, performance.now() - t0);
    }
    const us = best * 1000;
    return us > 0 ? CALIBRATION_READS / us : FALLBACK_READS_PER_US;
  } finally {
    close(sv[0]);
    close(sv[1]);
  }
}
