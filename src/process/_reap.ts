/**
 * Reaping a child that has exited (or is about to) through its pidfd.
 *
 * @module
 */
import { E } from "../../ffi/errno.ts";
import { W, waitidPidfd } from "../../ffi/spawn.ts";
import { close } from "../../ffi/unistd.ts";

/** Reaps a child known to have exited (or about to), then closes its pidfd. */
export function reapNow(pidfd: number): void {
  for (;;) {
    const w = waitidPidfd(pidfd, W.WEXITED | W.__WALL);
    if (w !== -E.EINTR) break;
  }
  close(pidfd);
}
