// Shared test helpers: descriptor accounting and bounded waits.
import { assertEquals } from "@std/assert";
import { F, fcntl, readlink } from "../ffi/unistd.ts";

// Deno refuses /proc/self paths without --allow-all, so descriptors are
// probed with fcntl(F_GETFD) through FFI instead of listing /proc/self/fd.
const FD_SCAN_LIMIT = 4096;

/** The descriptors open in this process right now (below 4096). */
export function openFds(): Set<number> {
  const fds = new Set<number>();
  for (let fd = 0; fd < FD_SCAN_LIMIT; fd++) {
    if (fcntl(fd, F.F_GETFD) >= 0) fds.add(fd);
  }
  return fds;
}

function describeFd(fd: number): string {
  const target = readlink(`/proc/self/fd/${fd}`);
  return typeof target === "string" ? `${fd} -> ${target}` : `${fd} (gone)`;
}

/**
 * Asserts the process has exactly the descriptors of `before` again,
 * allowing up to `graceMs` for asynchronous releases (Worker teardown).
 * Deno's own sanitizer cannot see descriptors opened through FFI.
 */
export async function assertNoFdLeak(
  before: Set<number>,
  graceMs = 2000,
): Promise<void> {
  const deadline = performance.now() + graceMs;
  let after = openFds();
  while (performance.now() < deadline) {
    const leaked = [...after].filter((fd) => !before.has(fd));
    if (leaked.length === 0) break;
    await new Promise((r) => setTimeout(r, 20));
    after = openFds();
  }
  const leaked = [...after].filter((fd) => !before.has(fd)).map(describeFd);
  assertEquals(leaked, [], "descriptors leaked");
}

/** Runs `fn` and asserts it leaves no descriptor behind. */
export async function withoutFdLeak(
  fn: () => void | Promise<void>,
): Promise<void> {
  const before = openFds();
  await fn();
  await assertNoFdLeak(before);
}

/** Whether `fd` is open in this process. */
export function isOpen(fd: number): boolean {
  return fcntl(fd, F.F_GETFD) >= 0;
}

/** The FD_CLOEXEC bit of `fd`. */
export function isCloexec(fd: number): boolean {
  const r = fcntl(fd, F.F_GETFD);
  if (r < 0) throw new Error(`fd ${fd} is not open`);
  return (r & F.FD_CLOEXEC) !== 0;
}

/** Rejects after `ms` unless `p` settles first. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms: ${what}`)),
      ms,
    );
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Bytes 0..n-1 of a repeating pattern, to check content end to end. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

let workersWarm: Promise<void> | undefined;

/**
 * Starts and stops one trivial Worker, once per test module: Deno opens an
 * eventfd and an epoll descriptor with the first Worker and keeps them for
 * the life of the process, which is not a leak of the code under test.
 */
export function warmUpWorkers(): Promise<void> {
  workersWarm ??= (async () => {
    const w = new Worker(
      "data:text/javascript,self.postMessage(1)",
      { type: "module" },
    );
    await within(
      new Promise((r) => w.onmessage = r),
      10_000,
      "warm-up worker",
    );
    w.terminate();
  })();
  return workersWarm;
}
