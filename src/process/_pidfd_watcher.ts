/**
 * One readiness watcher shared by every {@linkcode Process} of a realm:
 * a single `nonblocking` poll(2) over all watched descriptors (pidfds and
 * stderr pipes) plus an eventfd that wakes it when the set changes. While
 * anything is watched there is one pool thread asleep in poll(2), however
 * many children run; when the set is empty nothing is pending and the
 * eventfd is closed.
 *
 * A watched descriptor may be in the poll(2) in flight, so it must not be
 * closed while watched: {@linkcode unwatch} closes it once that is safe.
 *
 * @module
 */
import { close as closeFd, read, write } from "../../ffi/unistd.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import { eventfd, O } from "../../ffi/spawn.ts";
import { SyscallError } from "../../ffi/errno.ts";

/** Called on the event loop with the `revents` of a ready descriptor. */
export type ReadyCallback = (revents: number) => void;

interface Entry {
  events: number;
  onReady: ReadyCallback;
}

const entries = new Map<number, Entry>();
// Descriptors unwatched while a poll was in flight; closed after it.
const closeAfterPoll: number[] = [];
let wakeFd = -1;
let running = false;
let inPoll = false;
const ONE = new BigUint64Array([1n]);
const DRAIN = new Uint8Array(8);

function wake(): void {
  if (inPoll) write(wakeFd, new Uint8Array(ONE.buffer));
}

/**
 * Watches `fd` for `events` (poll(2) bits); `onReady` runs on the event
 * loop each time it is ready, until {@linkcode unwatch}.
 *
 * @throws {SyscallError} If the eventfd cannot be created.
 */
export function watch(
  fd: number,
  events: number,
  onReady: ReadyCallback,
): void {
  if (!running) {
    const r = eventfd(0, O.O_CLOEXEC | O.O_NONBLOCK);
    if (r < 0) throw new SyscallError(-r, "eventfd", "Cannot watch process");
    wakeFd = r;
    running = true;
    entries.set(fd, { events, onReady });
    loop().catch((e) => {
      // Nothing in the loop is expected to throw; make it visible.
      queueMicrotask(() => {
        throw e;
      });
    });
    return;
  }
  entries.set(fd, { events, onReady });
  wake();
}

/**
 * Stops watching `fd`; with `close`, closes it as soon as no poll(2) uses
 * it (at once if none is in flight).
 */
export function unwatch(fd: number, close: boolean): void {
  if (!entries.delete(fd)) {
    if (close) closeFd(fd);
    return;
  }
  if (inPoll) {
    if (close) closeAfterPoll.push(fd);
    wake();
  } else if (close) {
    closeFd(fd);
  }
}

/** Number of descriptors watched right now (for tests). */
export function watchedCount(): number {
  return entries.size;
}

async function loop(): Promise<void> {
  try {
    while (entries.size > 0) {
      const fds = [...entries.keys()];
      const pfd = new PollFds(fds.length + 1);
      pfd.set(0, wakeFd, POLL.POLLIN);
      fds.forEach((fd, i) => pfd.set(i + 1, fd, entries.get(fd)!.events));
      inPoll = true;
      try {
        await pfd.pollAsync(-1);
      } finally {
        inPoll = false;
      }
      for (const fd of closeAfterPoll.splice(0)) closeFd(fd);
      if (pfd.revents(0) !== 0) read(wakeFd, DRAIN);
      for (let i = 0; i < fds.length; i++) {
        const revents = pfd.revents(i + 1);
        if (revents === 0) continue;
        const entry = entries.get(fds[i]);
        // Unwatched (or replaced) by an earlier callback of this round:
        // a stale readiness is harmless, callbacks re-check with WNOHANG /
        // O_NONBLOCK reads.
        if (entry === undefined) continue;
        try {
          entry.onReady(revents);
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    }
  } finally {
    closeFd(wakeFd);
    wakeFd = -1;
    running = false;
  }
}
