// Shared test helpers: descriptor accounting and bounded waits.
import { assertEquals } from "@std/assert";
import { access, O, open, X_OK } from "../ffi/spawn.ts";
import { close, F, fcntl, read, readlink } from "../ffi/unistd.ts";
import { Process, ProcessIsolationError } from "../mod.ts";

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

function kind(fd: number): string {
  const target = readlink(`/proc/self/fd/${fd}`);
  if (typeof target !== "string") return "(gone)";
  return target.replace(/:\[\d+\]$/, "").replace(/ \(deleted\)$/, "");
}

function countByKind(fds: Set<number>): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const fd of fds) {
    const k = kind(fd);
    m.set(k, [...(m.get(k) ?? []), fd]);
  }
  return m;
}

// The user and network namespaces isola's jailed children share are held
// open for the life of the process from the first jailed spawn on
// (src/process/_shared_network.ts): made once, not leaked per spawn.
const HELD_FOR_LIFE = ["user", "net"];

function leakedSince(
  before: Map<string, number[]>,
  ignore: readonly string[],
): string[] {
  const out: string[] = [];
  for (const [k, fds] of countByKind(openFds())) {
    if (ignore.includes(k) || HELD_FOR_LIFE.includes(k)) continue;
    const had = before.get(k)?.length ?? 0;
    if (fds.length > had) out.push(`${fds.length - had} x ${k}`);
  }
  return out;
}

/** Descriptor counts by kind (socket, memfd:x, anon_inode:[eventfd], ...). */
export type FdSnapshot = Map<string, number[]>;

/** Takes a {@linkcode FdSnapshot} now (kinds must be read while open). */
export function fdSnapshot(): FdSnapshot {
  return countByKind(openFds());
}

/**
 * Asserts the process has no more descriptors of any kind (socket, memfd,
 * eventfd, pipe, ...) than in `before`, allowing up to `graceMs` for
 * asynchronous releases (Worker teardown). Counting per kind rather than
 * comparing numbers tolerates the Deno runtime closing and reopening its own
 * descriptors at other numbers. Deno's own sanitizer cannot see
 * descriptors opened through FFI.
 */
export async function assertNoFdLeak(
  before: FdSnapshot,
  graceMs = 2000,
  ignore: readonly string[] = [],
): Promise<void> {
  const deadline = performance.now() + graceMs;
  let leaked = leakedSince(before, ignore);
  while (leaked.length > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    leaked = leakedSince(before, ignore);
  }
  assertEquals(leaked, [], "descriptors leaked");
}

/**
 * Runs `fn` and asserts it leaves no descriptor behind (of the kinds not in
 * `ignore`, e.g. `"anon_inode:[eventfd]"`).
 */
export async function withoutFdLeak(
  fn: () => void | Promise<void>,
  ignore: readonly string[] = [],
): Promise<void> {
  const before = fdSnapshot();
  await fn();
  await assertNoFdLeak(before, 2000, ignore);
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

const warmed = new Map<string, Promise<void>>();

/**
 * Starts and stops a Worker running `url` (default: a module that only
 * loads the library), once per module URL: the first Worker of a module
 * makes Deno open an eventfd and an epoll descriptor that it keeps for the
 * life of the process, which is not a leak of the code under test. Call it
 * with the test's own Worker module before taking the descriptor baseline.
 */
export function warmUpWorkers(
  url: string = new URL("./fixtures/noop_worker.ts", import.meta.url).href,
): Promise<void> {
  let p = warmed.get(url);
  if (p === undefined) {
    p = (async () => {
      const w = new Worker(url, { type: "module" });
      await new Promise((r) => setTimeout(r, 300)); // loaded by then
      w.terminate();
      // The runtime settles its descriptors while the Worker winds down:
      // wait until their number has been stable for a while.
      let last = openFds().size;
      for (let stable = 0; stable < 5;) {
        await new Promise((r) => setTimeout(r, 50));
        const now = openFds().size;
        stable = now === last ? stable + 1 : 0;
        last = now;
      }
    })();
    warmed.set(url, p);
  }
  return p;
}

/** Whether /proc/<pid> exists (a zombie still has one). */
export function procExists(pid: number): boolean {
  return access(`/proc/${pid}`, 0) === 0;
}

/**
 * Reads a /proc file through FFI (Deno refuses /proc/<pid> paths without
 * --allow-all). Returns null if it cannot be opened.
 */
export function readProc(path: string): string | null {
  const fd = open(path, O.O_RDONLY | O.O_CLOEXEC);
  if (fd < 0) return null;
  try {
    const buf = new Uint8Array(65536);
    let len = 0;
    for (;;) {
      const n = read(fd, buf.subarray(len));
      if (n <= 0) break;
      len += n;
    }
    return new TextDecoder().decode(buf.subarray(0, len));
  } finally {
    close(fd);
  }
}

/** A process's state letter from /proc/<pid>/stat, or null if gone. */
export function procState(pid: number): string | null {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === null) return null;
  const i = stat.lastIndexOf(")");
  return stat.slice(i + 2, i + 3);
}

/** Whether GNU as and objcopy are installed (to re-assemble .S files). */
export const HAS_BINUTILS: boolean = access("/usr/bin/as", X_OK) === 0 &&
  access("/usr/bin/objcopy", X_OK) === 0;

/** Runs a tool to completion (through isola itself: no --allow-run). */
async function runTool(path: string, args: string[]): Promise<void> {
  await using p = Process.spawn(path, { args, stderr: "capture" });
  const s = await p.exited;
  if (s.kind !== "exited" || s.code !== 0) {
    throw new Error(
      `${path} failed: ${JSON.stringify(s)} ${
        new TextDecoder().decode(s.stderr)
      }`,
    );
  }
}

/** Assembles an x86_64 `.S` file and returns its .text bytes. */
export async function assembleText(src: string): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola-as-" });
  try {
    await runTool("/usr/bin/as", ["--64", "-o", `${dir}/t.o`, src]);
    await runTool("/usr/bin/objcopy", [
      "-O",
      "binary",
      "--only-section=.text",
      `${dir}/t.o`,
      `${dir}/t.bin`,
    ]);
    return await Deno.readFile(`${dir}/t.bin`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Why the kernel refuses unprivileged user namespaces here, or null. */
async function userNamespaceRefusal(): Promise<string | null> {
  try {
    await using p = Process.spawn("/bin/true", {
      isolate: { userNamespace: true, networkNamespace: true },
    });
    await within(p.exited, 5000, "/bin/true in a user namespace");
    return null;
  } catch (e) {
    if (e instanceof ProcessIsolationError) return e.message;
    throw e;
  }
}

/** Carries the probe's answer to the other test modules of this process. */
const USERNS_ENV = "ISOLA_TEST_USERNS_REFUSED";

function probedUserNamespaces(): Promise<string | null> {
  // Deno runs each test module in its own runtime, all in one process: the
  // environment is what they share, so the probe and its notice happen once.
  const known = Deno.env.get(USERNS_ENV);
  if (known !== undefined) return Promise.resolve(known === "" ? null : known);
  return userNamespaceRefusal().then((why) => {
    Deno.env.set(USERNS_ENV, why ?? "");
    if (why !== null) {
      console.error(
        `User namespaces are refused here; the tests that need them are ignored. ${why}`,
      );
    }
    return why;
  });
}

/**
 * Null where unprivileged user namespaces work; else why not (a chroot, a
 * container, Ubuntu's AppArmor rule).
 */
export const USERNS_REFUSED: string | null = await probedUserNamespaces();

/**
 * Whether isolated children can be started: use as `ignore: !USERNS` on
 * the tests that need a user namespace (the refusal path's own tests
 * run everywhere).
 */
export const USERNS: boolean = USERNS_REFUSED === null;

/** A test function, as `Deno.test` takes it. */
export type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/**
 * `Deno.test(name, fn)` for a test that needs a user namespace (an
 * isolated child) when `needed`: ignored where the kernel refuses them.
 */
export function usernsTest(name: string, fn: TestFn, needed = true): void {
  Deno.test({ name, ignore: needed && !USERNS, fn });
}

/**
 * Test registrations by need: `test.userns(name, fn)` is
 * {@linkcode usernsTest} (and keeps `deno fmt`'s one-line test layout).
 */
export const test = { userns: usernsTest };

/**
 * Compiles the C program `source` (a path) with gcc into a new temporary
 * directory that every user may search (jailed children run as uid 65534
 * on a root host). Returns the program's path and the directory to remove.
 */
export async function compileC(
  source: string,
): Promise<{ path: string; dir: string }> {
  const name = source.slice(source.lastIndexOf("/") + 1).replace(/\.c$/, "");
  const dir = await Deno.makeTempDir({ prefix: `isola-${name}-` });
  const path = `${dir}/${name}`;
  const r = await new Deno.Command("/usr/bin/gcc", {
    args: ["-O1", "-o", path, source],
    stderr: "piped",
  }).output();
  if (!r.success) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(`gcc ${source}: ${new TextDecoder().decode(r.stderr)}`);
  }
  await Deno.chmod(dir, 0o755);
  return { path, dir };
}
