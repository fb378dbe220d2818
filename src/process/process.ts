/**
 * {@linkcode Process}: start a program in a child process that never runs
 * JavaScript, keep chosen descriptors open in it at the same numbers,
 * isolate it with namespaces, learn how it ended through its pidfd, and
 * kill it without ever signalling a recycled pid (libcamera's pidfd-based
 * `Process`, without its weaknesses).
 *
 * @module
 */
import { E, SyscallError } from "../../ffi/errno.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import {
  access,
  CLD,
  cString,
  cStringArray,
  environPointer,
  environStrings,
  O,
  open,
  pidfdSendSignal,
  pipe2,
  W,
  waitidPidfd,
  X_OK,
} from "../../ffi/spawn.ts";
import { type SignalName, signalName, signalNumber } from "../../ffi/signal.ts";
import { POLL, PollFds } from "../../ffi/poll.ts";
import {
  close as closeFd,
  F,
  fcntl,
  read,
  readlink,
} from "../../ffi/unistd.ts";
import { type FdLike, fdNumber, OwnedFd } from "../fd/owned_fd.ts";
import { unwatch, watch } from "./_pidfd_watcher.ts";
import { TypedEventTarget } from "../common/typed_event_target.ts";
import { settleWithin } from "../common/_timeout.ts";
import {
  type ProcessIsolation,
  type ProcessIsolationReport,
  type ResolvedIsolation,
  resolveIsolation,
} from "./isolation.ts";
import { ProcessSpawnError } from "./errors.ts";
import { Clone3UnavailableError, startJailed } from "./_clone3_executor.ts";
import { startPosixSpawn } from "./_posix_spawn_executor.ts";
import type { SpawnPlan, SpawnStarted } from "./_spawn_plan.ts";
import { denoChildPaths, isThisDeno } from "./_deno_paths.ts";

export {
  ISOLATION_LAYERS,
  type IsolationLayer,
  type ProcessFilesystem,
  type ProcessIsolation,
  type ProcessIsolationReport,
  type ProcessLimits,
} from "./isolation.ts";
export { ProcessIsolationError, ProcessSpawnError } from "./errors.ts";
export type { SignalName } from "../../ffi/signal.ts";

/** How many bytes of a captured stderr the exit report keeps: 64 KiB. */
export const STDERR_TAIL_BYTES = 65536;

/** The environment variable that names the child's log file. */
export const LOG_FILE_ENV = "ISOLA_LOG_FILE";

/** The child called exit(2) (or returned from `main`). */
export interface ProcessExited {
  /** Discriminant. */
  kind: "exited";
  /** The exit status, 0-255. */
  code: number;
  /** The last {@linkcode STDERR_TAIL_BYTES} of stderr, when captured. */
  stderr?: Uint8Array;
}

/** A signal ended the child. */
export interface ProcessSignaled {
  /** Discriminant. */
  kind: "signaled";
  /** The signal's name, e.g. `"SIGSEGV"` (libcamera loses it). */
  signal: string;
  /** The signal's number, e.g. `11`. */
  signalNumber: number;
  /** Whether the kernel wrote a core dump (`CLD_DUMPED`). */
  coreDumped: boolean;
  /** The last {@linkcode STDERR_TAIL_BYTES} of stderr, when captured. */
  stderr?: Uint8Array;
}

/** How a child ended, read with `waitid(P_PIDFD, WEXITED)`. */
export type ProcessExit = ProcessExited | ProcessSignaled;

/**
 * Where a standard stream of the child goes: `"null"` (/dev/null, the
 * default), `"inherit"` (the parent's own), or a descriptor of the
 * parent, which the child gets as a copy.
 */
export type ProcessStdio = "null" | "inherit" | FdLike;

/**
 * Where the child's stderr goes: a {@linkcode ProcessStdio}, or
 * `"capture"`: a pipe the {@linkcode Process} owns, whose last 64 KiB come
 * with the exit report.
 */
export type ProcessStderr = ProcessStdio | "capture";

/** How the child was started. */
export type ProcessSpawnPath = "clone3" | "pidfd_spawn" | "posix_spawn";

/** Options of {@linkcode Process.start}. */
export interface ProcessOptions {
  /** Arguments after `argv[0]` (which is the path as given). */
  args?: readonly string[];
  /** Variables to set in the child, over the inherited environment. */
  env?: Readonly<Record<string, string>>;
  /** Start from an empty environment instead of the parent's. */
  clearEnv?: boolean;
  /** Working directory of the child. */
  cwd?: string;
  /**
   * Descriptors (>= 3) that stay open in the child at the same numbers.
   * Every other descriptor is closed.
   */
  keepFds?: readonly FdLike[];
  /** stdin. Default `"null"`. */
  stdin?: ProcessStdio;
  /** stdout. Default `"null"`. */
  stdout?: ProcessStdio;
  /** stderr. Default `"null"`. */
  stderr?: ProcessStderr;
  /**
   * `true` for every layer of {@linkcode ProcessIsolation}, or a choice.
   * Default: none.
   */
  isolate?: boolean | ProcessIsolation;
  /**
   * Run anyway when a requested isolation layer is not available (the
   * kernel refuses a namespace, or the platform has no clone3 path);
   * {@linkcode Process.describe} tells what took effect. Default false:
   * such a spawn fails with {@linkcode ProcessIsolationError}.
   */
  allowUnisolated?: boolean;
  /** A log file path for the child, passed as `ISOLA_LOG_FILE`. */
  logFile?: string;
  /**
   * Force a start method (tests, benchmarks): `"auto"` (default) uses
   * clone3 where the trampoline exists, else posix_spawn.
   */
  spawnPath?: "auto" | "clone3" | "posix_spawn";
}

/** What {@linkcode Process.describe} reports. */
export interface ProcessDescription {
  /** The child's pid (informative only: signal it through the Process). */
  pid: number;
  /** The program, after PATH search. */
  path: string;
  /** `argv`. */
  argv: string[];
  /** How it was started. */
  spawnPath: ProcessSpawnPath;
  /** The isolation layers in effect. */
  isolation: ProcessIsolationReport;
  /** Requested layers that did not take effect, each with the reason. */
  notApplied: string[];
  /**
   * Whether the child joined the network namespace isola's jailed children
   * share (see `shareNetworkNamespace` of {@linkcode ProcessIsolation})
   * rather than one of its own.
   */
  sharedNetworkNamespace: boolean;
}

/** The `exit` event: the child ended and was reaped. */
export class ProcessExitEvent extends Event {
  /** How it ended (the same field name as on every isola exit event). */
  readonly exit: ProcessExit;

  /**
   * Builds the event.
   *
   * @param exit How it ended.
   */
  constructor(exit: ProcessExit) {
    super("exit");
    this.exit = exit;
  }
}

/** The events of {@linkcode Process}. */
export interface ProcessEventMap {
  /** The child ended (libcamera's `finished`). */
  exit: ProcessExitEvent;
}

/** Options of {@linkcode Process.terminate}. */
export interface ProcessTerminateOptions {
  /** Milliseconds between SIGTERM and SIGKILL. Default 5000. */
  grace?: number;
}

type State = "new" | "running" | "exited";

/** Every option of {@linkcode ProcessOptions} and the type it must have. */
const OPTION_TYPES: Readonly<Record<keyof ProcessOptions, string>> = {
  args: "array",
  env: "object",
  clearEnv: "boolean",
  cwd: "string",
  keepFds: "array",
  stdin: "any",
  stdout: "any",
  stderr: "any",
  isolate: "any",
  allowUnisolated: "boolean",
  logFile: "string",
  spawnPath: "string",
};

/** TypeError naming the option for a wrong type or an unknown option. */
function checkOptions(options: unknown): void {
  if (
    typeof options !== "object" || options === null || Array.isArray(options)
  ) {
    throw new TypeError(
      `Cannot start process: options must be an object (arguments go in options.args), got ${
        Array.isArray(options) ? "an array" : String(options)
      }`,
    );
  }
  for (const [key, value] of Object.entries(options)) {
    const want = (OPTION_TYPES as Record<string, string>)[key];
    if (want === undefined) {
      throw new TypeError(`Cannot start process: unknown option "${key}"`);
    }
    if (value === undefined || want === "any") continue;
    const ok = want === "array"
      ? Array.isArray(value)
      : want === "object"
      ? typeof value === "object" && value !== null && !Array.isArray(value)
      : want === "string"
      ? typeof value === "string"
      : typeof value === "boolean";
    if (!ok) {
      throw new TypeError(
        `Invalid option ${key}: ${String(value)} (must be ${
          want === "array" ? "an array" : `a ${want}`
        })`,
      );
    }
  }
}

function checkString(value: unknown, what: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`Cannot spawn process: ${what} must be a string`);
  }
  if (value.includes("\0")) {
    throw new TypeError(`Cannot spawn process: ${what} contains a NUL byte`);
  }
  return value;
}

/** A `deno run` child in the jail also sees its cache and its scripts' projects. */
function withDenoView(
  iso: ResolvedIsolation,
  program: string,
  args: string[],
  vars: ReadonlyMap<string, string>,
  cwd: string | null,
): ResolvedIsolation {
  if (!iso.layers.mountNamespace || !isThisDeno(program)) return iso;
  const read = [
    ...iso.filesystem.read,
    ...denoChildPaths(args, vars, "project", cwd),
  ];
  return { ...iso, filesystem: { ...iso.filesystem, read } };
}

/** This process's working directory through readlink (no --allow-read needed), or null. */
function workingDir(): string | null {
  const dir = readlink("/proc/self/cwd");
  return typeof dir === "string" && dir.startsWith("/") ? dir : null;
}

function findInPath(name: string, envPath: string): string | null {
  for (const dir of envPath.split(":")) {
    const candidate = `${dir === "" ? "." : dir}/${name}`;
    if (access(candidate, X_OK) === 0) return candidate;
  }
  return null;
}

/** Keeps the last `cap` bytes written to it. */
class Tail {
  readonly #chunks: Uint8Array[] = [];
  #size = 0;
  readonly #cap: number;

  constructor(cap: number) {
    this.#cap = cap;
  }

  push(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#size += bytes.length;
    while (this.#size - this.#chunks[0].length >= this.#cap) {
      this.#size -= this.#chunks.shift()!.length;
    }
  }

  bytes(): Uint8Array {
    const all = new Uint8Array(this.#size);
    let off = 0;
    for (const c of this.#chunks) {
      all.set(c, off);
      off += c.length;
    }
    return all.slice(Math.max(0, all.length - this.#cap));
  }
}

const SCRATCH = new Uint8Array(STDERR_TAIL_BYTES);
const SIGTERM = signalNumber("SIGTERM");

/**
 * A child process running a program. The child never runs JavaScript:
 * on Linux x86_64 it is started by a small clone3 trampoline
 * (`CLONE_PIDFD | CLONE_VM | CLONE_VFORK | CLONE_CLEAR_SIGHAND`, plus
 * namespaces on request) that only makes system calls before execve;
 * elsewhere by posix_spawn(3) and pidfd_open(2). See `docs/process.md`.
 *
 * The child is watched through its pidfd (no SIGCHLD handler, no global
 * manager; one shared poll(2) for all children) and reaped as soon as it
 * ends; the `exit` event and {@linkcode Process.exited} report how.
 * {@linkcode Process.kill} goes through pidfd_send_signal(2), so it can
 * never hit a recycled pid. `await using` kills and reaps: no zombies.
 *
 * Fixes over libcamera's: the signal that killed the child is reported
 * (libcamera reports -1), the destructor reaps, an isolated child dies
 * with its parent (`PR_SET_PDEATHSIG`), exec failures are errors with
 * errno, and the stderr tail says why a child died.
 *
 * A running child keeps the Deno program alive until it ends.
 *
 * @example Exit code
 * ```ts
 * import { Process } from "@isola/isola";
 *
 * await using proc = Process.spawn("/bin/sh", { args: ["-c", "exit 42"] });
 * console.log(await proc.exited); // { kind: "exited", code: 42 }
 * ```
 *
 * @example An isolated child, and why it died
 * ```ts
 * import { Process } from "@isola/isola";
 *
 * await using proc = Process.spawn("/bin/sh", {
 *   args: ["-c", "echo boom >&2; kill -s SEGV $$"],
 *   isolate: true,
 *   allowUnisolated: true, // where user namespaces are refused: describe() says
 *   stderr: "capture",
 * });
 * console.log(proc.describe().isolation.networkNamespace); // true
 * const status = await proc.exited;
 * if (status.kind === "signaled") {
 *   console.log(status.signal); // "SIGSEGV"
 *   console.log(new TextDecoder().decode(status.stderr)); // "boom\n"
 * }
 * ```
 */
export class Process extends TypedEventTarget<ProcessEventMap>
  implements AsyncDisposable {
  #state: State = "new";
  #pid = -1;
  #pidfd = -1;
  #stderrFd = -1;
  #tail: Tail | undefined;
  #status: ProcessExit | null = null;
  #description: ProcessDescription | undefined;
  readonly #exited = Promise.withResolvers<ProcessExit>();

  /**
   * Starts `path` and returns its {@linkcode Process}.
   *
   * @param path The program; without a `/` it is searched in `PATH`.
   * @param options See {@linkcode ProcessOptions}.
   * @returns The running process.
   * @throws See {@linkcode Process.start}.
   */
  static spawn(path: string, options: ProcessOptions = {}): Process {
    const p = new Process();
    p.start(path, options);
    return p;
  }

  /**
   * Starts the program. Returns once the child has exec'd it (or failed
   * to: then nothing is left running and this throws).
   *
   * @param path The program; without a `/` it is searched in `PATH`.
   * @param options See {@linkcode ProcessOptions}.
   * @throws {TypeError} If already started, or an option has the wrong
   *   type (empty path, NUL bytes, unknown signal).
   * @throws {RangeError} If a kept descriptor is negative, below 3, or
   *   not open.
   * @throws {ProcessSpawnError} If the program cannot be run (`ENOENT`,
   *   `EACCES`, ...) or clone3/posix_spawn fails.
   * @throws {ProcessIsolationError} If requested isolation is
   *   unavailable and `allowUnisolated` is not set.
   */
  start(path: string, options: ProcessOptions = {}): void {
    if (this.#state !== "new") {
      throw new TypeError("Cannot start process: it was already started");
    }
    checkString(path, "path");
    if (path === "") {
      throw new TypeError("Cannot start process: the path is empty");
    }
    checkOptions(options);
    const args = (options.args ?? []).map((a, i) =>
      checkString(a, `args[${i}]`)
    );
    const extraEnv: [string, string][] = [];
    for (const [k, v] of Object.entries(options.env ?? {})) {
      checkString(k, "an env name");
      checkString(v, `env.${k}`);
      if (k === "" || k.includes("=")) {
        throw new TypeError(`Cannot start process: bad env name "${k}"`);
      }
      extraEnv.push([k, v]);
    }
    if (options.logFile !== undefined) {
      extraEnv.push([LOG_FILE_ENV, checkString(options.logFile, "logFile")]);
    }
    const cwd = options.cwd === undefined
      ? undefined
      : checkString(options.cwd, "cwd");
    if (cwd === "") throw new TypeError("Cannot start process: cwd is empty");
    const keep = new Set<number>();
    for (const fd of options.keepFds ?? []) {
      const n = fdNumber(fd, "Cannot keep file descriptor");
      if (n < 3) {
        throw new RangeError(
          `Cannot keep file descriptor: ${n} is a standard stream (use stdin/stdout/stderr)`,
        );
      }
      if (fcntl(n, F.F_GETFD) < 0) {
        throw new RangeError(`Cannot keep file descriptor: ${n} is not open`);
      }
      keep.add(n);
    }
    const stdio = [
      this.#checkStdio(options.stdin, 0, "stdin"),
      this.#checkStdio(options.stdout, 1, "stdout"),
      this.#checkStdio(options.stderr, 2, "stderr"),
    ];
    const iso = resolveIsolation(options.isolate);
    const want = options.spawnPath ?? "auto";
    if (!["auto", "clone3", "posix_spawn"].includes(want)) {
      throw new TypeError(`Invalid spawnPath: ${want}`);
    }
    if (want === "clone3" && !clone3Available()) {
      throw new TypeError(
        `Cannot start process: no clone3 trampoline for ${Deno.build.arch}`,
      );
    }

    // Resolve the program.
    const baseEnv = options.clearEnv === true ? [] : null;
    let program = path;
    if (!path.includes("/")) {
      const envPath = extraEnv.find(([k]) => k === "PATH")?.[1] ??
        (baseEnv ?? environStrings()).find((s) => s.startsWith("PATH="))
          ?.slice(5) ??
        "/usr/local/bin:/usr/bin:/bin";
      const found = findInPath(path, envPath);
      if (found === null) throw new ProcessSpawnError(E.ENOENT, "execve", path);
      program = found;
    }

    // From here on descriptors are opened: close them on every path out.
    const temps: number[] = [];
    let captureRead = -1;
    try {
      const sources: number[] = [];
      let devNull = -1; // one descriptor serves every "null" stream
      for (let t = 0; t < 3; t++) {
        const s = stdio[t];
        if (s === "null") {
          if (devNull < 0) {
            devNull = open("/dev/null", O.O_RDWR | O.O_CLOEXEC);
            if (devNull < 0) {
              throw new ProcessSpawnError(-devNull, "open", "/dev/null");
            }
            temps.push(devNull);
          }
          sources.push(devNull);
        } else if (s === "capture") {
          const p = pipe2(O.O_CLOEXEC);
          if (typeof p === "number") {
            throw new ProcessSpawnError(-p, "pipe2", program);
          }
          captureRead = p[0];
          temps.push(p[1]);
          sources.push(p[1]);
          fcntl(captureRead, F.F_SETFL, O.O_NONBLOCK);
        } else {
          sources.push(s);
        }
      }
      const maxTarget = Math.max(2, ...keep);
      // A source must not be overwritten before it is copied: move any
      // that sits on a target number (other than its own) above them all.
      for (let t = 0; t < 3; t++) {
        const s = sources[t];
        if (s !== t && s <= maxTarget) {
          const moved = fcntl(s, F.F_DUPFD_CLOEXEC, maxTarget + 1);
          if (moved < 0) throw new ProcessSpawnError(-moved, "fcntl", program);
          temps.push(moved);
          sources[t] = moved;
        }
      }
      const envp = this.#environment(baseEnv, extraEnv);
      const argv = cStringArray([path, ...args]);
      const cpath = cString(program);
      const ccwd = cwd === undefined ? undefined : cString(cwd);
      const notApplied: string[] = [];
      const parentCwd = workingDir();
      const plan: SpawnPlan = {
        program,
        iso: withDenoView(iso, program, args, envp.vars, cwd ?? parentCwd),
        allowUnisolated: options.allowUnisolated === true,
        notApplied,
        temps,
        stdio: sources,
        keep,
        inheritedCwd: parentCwd,
        exec: { path: cpath, argv: argv.ptrs, envp: envp.pointer, cwd: ccwd },
      };
      // The executor: the clone3 trampoline where it exists, else (or
      // when clone3 is refused with ENOSYS) posix_spawn.
      let started: SpawnStarted | undefined;
      let how: ProcessSpawnPath = "clone3";
      let noClone3: string | undefined;
      if (want !== "posix_spawn" && clone3Available()) {
        try {
          started = startJailed(plan);
        } catch (e) {
          if (!(e instanceof Clone3UnavailableError) || want === "clone3") {
            throw e;
          }
          noClone3 =
            "clone3 refused with ENOSYS: Linux < 5.3 or a seccomp filter";
        }
      }
      if (started === undefined) {
        how = "posix_spawn";
        started = startPosixSpawn(
          { ...plan, iso },
          noClone3 ??
            (clone3Available()
              ? "forced"
              : `no clone3 path on ${Deno.build.arch}`),
        );
      }
      keepAlive(envp, argv, cpath, ccwd); // read by the child until exec
      this.#pid = started.pid;
      this.#pidfd = started.pidfd;
      this.#state = "running";
      this.#description = {
        pid: started.pid,
        path: program,
        argv: [path, ...args],
        spawnPath: how,
        isolation: started.report,
        notApplied,
        sharedNetworkNamespace: started.sharedNetworkNamespace,
      };
      if (captureRead >= 0) {
        this.#stderrFd = captureRead;
        this.#tail = new Tail(STDERR_TAIL_BYTES);
        captureRead = -1;
        watch(this.#stderrFd, POLL.POLLIN, () => this.#readStderr());
      }
      watch(this.#pidfd, POLL.POLLIN, () => this.#onPidfdReady());
    } finally {
      for (const fd of temps) closeFd(fd);
      if (captureRead >= 0) closeFd(captureRead);
    }
  }

  #checkStdio(
    value: ProcessStderr | undefined,
    target: number,
    what: string,
  ): number | "null" | "capture" {
    if (value === undefined || value === "null") return "null";
    if (value === "inherit") return target;
    if (value === "capture") {
      if (target !== 2) {
        throw new TypeError(`Invalid ${what}: only stderr can be captured`);
      }
      return "capture";
    }
    if (typeof value === "string") {
      throw new TypeError(`Invalid ${what}: ${value}`);
    }
    const n = fdNumber(value, `Invalid ${what}`);
    if (fcntl(n, F.F_GETFD) < 0) {
      throw new RangeError(`Invalid ${what}: descriptor ${n} is not open`);
    }
    return n;
  }

  #environment(
    base: string[] | null,
    extra: [string, string][],
  ): {
    pointer: Deno.PointerValue;
    keep: unknown[];
    vars: Map<string, string>;
  } {
    const vars = new Map<string, string>();
    for (const s of base ?? environStrings()) {
      const eq = s.indexOf("=");
      if (eq > 0) vars.set(s.slice(0, eq), s.slice(eq + 1));
    }
    for (const [k, v] of extra) vars.set(k, v);
    if (base === null && extra.length === 0) {
      return { pointer: environPointer(), keep: [], vars };
    }
    const arr = cStringArray([...vars].map(([k, v]) => `${k}=${v}`));
    return { pointer: Deno.UnsafePointer.of(arr.ptrs), keep: [arr], vars };
  }

  #readStderr(): boolean {
    const fd = this.#stderrFd;
    if (fd < 0) return false;
    for (;;) {
      const n = read(fd, SCRATCH);
      if (n > 0) {
        this.#tail!.push(SCRATCH.slice(0, n));
        continue;
      }
      if (n === -E.EINTR) continue;
      if (n === -E.EAGAIN) return true;
      // EOF (0) or an error: nothing more will come.
      this.#stderrFd = -1;
      unwatch(fd, true);
      return false;
    }
  }

  #onPidfdReady(deferEvent = false): void {
    if (this.#state !== "running") return;
    const w = waitidPidfd(
      this.#pidfd,
      W.WEXITED | W.WNOHANG | W.__WALL,
    );
    if (typeof w !== "number" && w.pid === 0) return; // not yet
    let status: ProcessExit;
    if (typeof w === "number") {
      // ECHILD: somebody else reaped our child (a waitpid(-1, __WALL)
      // elsewhere in the process); the status is lost.
      status = { kind: "exited", code: -1 };
    } else if (w.code === CLD.CLD_EXITED) {
      status = { kind: "exited", code: w.status };
    } else {
      status = {
        kind: "signaled",
        signal: signalName(w.status),
        signalNumber: w.status,
        coreDumped: w.code === CLD.CLD_DUMPED,
      };
    }
    // What the child wrote before it died is in the pipe now; a
    // grandchild holding the pipe open must not delay the report.
    if (this.#tail !== undefined) {
      this.#readStderr();
      if (this.#stderrFd >= 0) {
        unwatch(this.#stderrFd, true);
        this.#stderrFd = -1;
      }
      status.stderr = this.#tail.bytes();
    }
    unwatch(this.#pidfd, true);
    this.#pidfd = -1;
    this.#state = "exited";
    this.#status = status;
    this.#exited.resolve(status);
    const event = new ProcessExitEvent(status);
    if (deferEvent) queueMicrotask(() => this.dispatchEvent(event));
    else this.dispatchEvent(event);
  }

  /**
   * Blocks this thread up to `timeoutMs` until the child has ended, and
   * reaps it. For callers that cannot return to the event loop (a
   * synchronous IPC call whose peer died); the `exit` event follows in a
   * microtask.
   *
   * @param timeoutMs How long to wait, in milliseconds (0: just check).
   * @returns The exit report, or null if the child still runs.
   * @throws {TypeError} If not started.
   * @throws {RangeError} If `timeoutMs` is not a finite number >= 0.
   *
   * @example
   * ```ts
   * import { Process } from "@isola/isola";
   *
   * await using p = Process.spawn("/bin/sh", { args: ["-c", "exit 3"] });
   * console.log(p.waitSync(5000)); // { kind: "exited", code: 3 }
   * ```
   */
  waitSync(timeoutMs: number): ProcessExit | null {
    if (this.#state === "new") {
      throw new TypeError("Cannot wait for process: it was not started");
    }
    if (
      typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) ||
      timeoutMs < 0
    ) {
      throw new RangeError(
        `Invalid timeoutMs: ${timeoutMs} (must be a finite number >= 0)`,
      );
    }
    if (this.#status !== null) return this.#status;
    const p = new PollFds(1);
    p.set(0, this.#pidfd, POLL.POLLIN);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const remaining = Math.max(0, Math.ceil(deadline - performance.now()));
      const r = p.poll(remaining);
      if (r > 0) break;
      if (r === 0 || r !== -E.EINTR) return null;
    }
    this.#onPidfdReady(true);
    return this.#status;
  }

  /**
   * A duplicate of the child's pidfd, for watching the child from another
   * thread (poll(2) reports it readable once the child has ended). The
   * caller owns it; it never reaps or signals through it.
   *
   * @returns The duplicate, close-on-exec.
   * @throws {TypeError} If the child is not running.
   * @throws {SyscallError} If fcntl fails.
   *
   * @example
   * ```ts
   * import { Process } from "@isola/isola";
   *
   * await using p = Process.spawn("/bin/true");
   * using pidfd = p.dupPidfd();
   * console.log(pidfd.fd > 2); // true
   * ```
   */
  dupPidfd(): OwnedFd {
    if (this.#state !== "running") {
      throw new TypeError("Cannot duplicate pidfd: the process is not running");
    }
    const r = fcntl(this.#pidfd, F.F_DUPFD_CLOEXEC, 3);
    if (r < 0) throw new SyscallError(-r, "fcntl", "Cannot duplicate pidfd");
    return new OwnedFd(r);
  }

  /** The child's pid, or undefined before {@linkcode Process.start}. */
  get pid(): number | undefined {
    return this.#pid < 0 ? undefined : this.#pid;
  }

  /** Whether the child was started and has not been reaped yet. */
  get running(): boolean {
    return this.#state === "running";
  }

  /** How the child ended, or null while it runs (or before start). */
  get exitStatus(): ProcessExit | null {
    return this.#status;
  }

  /** Resolves when the child has ended and been reaped. Never rejects. */
  get exited(): Promise<ProcessExit> {
    return this.#exited.promise;
  }

  /**
   * Sends a signal through pidfd_send_signal(2). After the child has
   * ended this does nothing.
   *
   * @param signal A name such as `"SIGTERM"`, or a number. Default
   *   `"SIGKILL"`.
   * @throws {TypeError} If not started, or the signal is unknown.
   * @throws {SyscallError} If pidfd_send_signal fails other than `ESRCH`.
   */
  kill(signal: SignalName | number = "SIGKILL"): void {
    const sig = signalNumber(signal);
    if (this.#state === "new") {
      throw new TypeError("Cannot kill process: it was not started");
    }
    if (this.#state === "exited") return;
    const r = pidfdSendSignal(this.#pidfd, sig);
    // ESRCH: dead, not yet reaped; the watcher will report it.
    if (r < 0 && r !== -E.ESRCH) {
      throw new SyscallError(-r, "pidfd_send_signal", "Cannot kill process");
    }
  }

  /**
   * Sends SIGTERM, and SIGKILL if the child is still alive after `grace`
   * milliseconds. Resolves with the exit report. An isolated child is pid 1
   * of its own PID namespace, which the kernel shields from signals it has
   * no handler for: if it does not catch SIGTERM (its default action would
   * end it), it gets SIGKILL at once instead of waiting out the grace. A
   * signal it sends itself (`kill -TERM $$`) is ignored the same way.
   *
   * @param options `grace`, default 5000 ms.
   * @returns How the child ended.
   * @throws {TypeError} If not started.
   * @throws {RangeError} If `grace` is negative or not a number.
   */
  async terminate(options: ProcessTerminateOptions = {}): Promise<ProcessExit> {
    const grace = options.grace ?? 5000;
    if (typeof grace !== "number" || Number.isNaN(grace) || grace < 0) {
      throw new RangeError(`Invalid grace: ${grace} (must be >= 0 ms)`);
    }
    if (this.#state === "new") {
      throw new TypeError("Cannot terminate process: it was not started");
    }
    if (this.#status !== null) return this.#status;
    // pid 1 of its own namespace ignores a signal it has no handler for
    // (pid_namespaces(7)); SIGTERM's default is to end, so do that now.
    if (this.#description?.isolation.pidNamespace && !this.#catches(SIGTERM)) {
      this.kill("SIGKILL");
      return await this.#exited.promise;
    }
    this.kill("SIGTERM");
    const done = await settleWithin(this.#exited.promise, grace);
    if (done !== null) return done;
    this.kill("SIGKILL");
    return await this.#exited.promise;
  }

  /** Whether the child has a handler for `sig` (`SigCgt` in /proc/<pid>/status). */
  #catches(sig: number): boolean {
    const fd = open(`/proc/${this.#pid}/status`, O.O_RDONLY | O.O_CLOEXEC);
    if (fd < 0) return true; // unknown: give it the grace period
    const n = read(fd, SCRATCH);
    closeFd(fd);
    const m = new TextDecoder().decode(SCRATCH.subarray(0, Math.max(0, n)))
      .match(/^SigCgt:\s+([0-9a-f]+)$/m);
    return m === null || ((BigInt("0x" + m[1]) >> BigInt(sig - 1)) & 1n) === 1n;
  }

  /**
   * How the child was started and which isolation layers took effect.
   *
   * @returns A fresh description object.
   * @throws {TypeError} If not started.
   */
  describe(): ProcessDescription {
    if (this.#description === undefined) {
      throw new TypeError("Cannot describe process: it was not started");
    }
    const d = this.#description;
    return {
      ...d,
      argv: [...d.argv],
      isolation: { ...d.isolation },
      notApplied: [...d.notApplied],
    };
  }

  /** Kills the child if it runs (SIGKILL) and waits until it is reaped. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === "new") return;
    this.kill("SIGKILL");
    await this.#exited.promise;
  }
}

const sink: { values: unknown } = { values: undefined };
/** Keeps buffers the child reads referenced until after the spawn call. */
function keepAlive(...values: unknown[]): void {
  sink.values = values;
  sink.values = undefined;
}
