/**
 * The isolation of a child process, one shape from request to report: the
 * options ({@linkcode ProcessIsolation}), the layer names
 * ({@linkcode IsolationLayer}), and what took effect
 * ({@linkcode ProcessIsolationReport}, a boolean per layer). See
 * `docs/security.md` for what each layer refuses and the test behind it.
 *
 * @module
 */
import { type SignalName, signalNumber } from "../../ffi/signal.ts";

/**
 * Paths an isolated child may use. With the minimal root
 * (`mountNamespace`) they are the only host paths it sees besides the
 * system directories and the program; with Landlock (`landlock`) they are
 * the only ones it may open.
 */
export interface ProcessFilesystem {
  /** Absolute paths (files or directories) the child may read and execute. */
  read?: readonly string[];
  /** Absolute paths beneath which the child may also write, create, remove. */
  write?: readonly string[];
  /**
   * Size in bytes of a private tmpfs on `/tmp` (minimal root only), or
   * `false` for none. Default 64 MiB.
   */
  tmp?: number | false;
}

/** Resource limits (setrlimit(2)) of an isolated child. */
export interface ProcessLimits {
  /** `RLIMIT_CORE` in bytes. Default 0: no core dumps. */
  core?: number;
  /** `RLIMIT_NOFILE`: open descriptors. Default 4096. */
  nofile?: number;
  /** `RLIMIT_FSIZE`: largest file written, bytes. Default 1 GiB. */
  fsize?: number;
  /**
   * `RLIMIT_NPROC`: processes and threads. Counted per user namespace
   * (Linux 5.14+), so it bounds this child alone; set only with
   * `userNamespace`. Default 1024.
   */
  nproc?: number;
}

/**
 * Isolation layers. `isolate: true` turns every one on; an object turns on
 * every layer it does not set to `false`.
 */
export interface ProcessIsolation {
  /**
   * A new user namespace (`CLONE_NEWUSER`) in which the child maps only
   * itself: it has no capability outside it.
   */
  userNamespace?: boolean;
  /**
   * On a root host, the child runs as uid/gid 65534 (`nobody`) with no
   * supplementary group, never as kernel uid 0 (it drops before its user
   * namespace exists, then maps itself). On another host it keeps the
   * caller's ids. Needs `userNamespace`.
   */
  identity?: boolean;
  /**
   * A new PID namespace (`CLONE_NEWPID`): the child is pid 1 of its own
   * namespace and cannot address any process outside it; its descendants
   * die with it.
   */
  pidNamespace?: boolean;
  /** A new network namespace (`CLONE_NEWNET`): only a loopback that is down. */
  networkNamespace?: boolean;
  /**
   * With `networkNamespace`: join the one empty network namespace isola's
   * jailed children share (made once per process, ~0.5 ms less per spawn)
   * instead of making a new one. Used only where Landlock scopes abstract
   * Unix sockets to the child (ABI 6, Linux 6.12; needs `landlock`), so no
   * child can connect to another's; they still share the abstract names
   * and the socket table of `/proc/net`. Default true; `false` gives each
   * child its own. {@linkcode ProcessDescription} says which was used.
   */
  shareNetworkNamespace?: boolean;
  /** A new IPC namespace (`CLONE_NEWIPC`): no SysV IPC or POSIX queues of the host. */
  ipcNamespace?: boolean;
  /** A new UTS namespace (`CLONE_NEWUTS`), hostname `isola`. */
  utsNamespace?: boolean;
  /** A new cgroup namespace (`CLONE_NEWCGROUP`): its cgroup is its root. */
  cgroupNamespace?: boolean;
  /**
   * A mount namespace and `pivot_root` into a fresh minimal root:
   * read-only system directories (`/usr`, `/lib*`, `/bin`, `/sbin`,
   * `/etc/ld.so.cache`, ...), the program, the `filesystem` paths, a
   * private `/proc` (with `pidNamespace`; `/proc/sys` read-only), `/dev`
   * with null, zero, full, random, urandom, and a tmpfs `/tmp`. Needs
   * `userNamespace`. The child starts in `/` unless `cwd` is given (it must
   * be visible).
   */
  mountNamespace?: boolean;
  /**
   * Landlock (Linux 5.13+) as a second layer: the child may open only what
   * it sees (with `mountNamespace`) or only the `filesystem` paths
   * (without). Where the kernel lacks it the layer is reported as not
   * applied, and is an error only if asked for with `true`.
   */
  landlock?: boolean;
  /** Paths the child may use; see {@linkcode ProcessFilesystem}. */
  filesystem?: ProcessFilesystem;
  /** `setsid()` (no controlling terminal) and a new, empty session keyring. */
  newSession?: boolean;
  /** Resource limits; `false` for none. */
  limits?: false | ProcessLimits;
  /**
   * A seccomp-bpf filter installed last before execve: x86_64 only, no
   * x32; keyctl, io_uring, bpf, perf_event_open, userfaultfd, namespace
   * and mount calls, ptrace, process_vm_*, kexec and modules, TIOCSTI
   * refused with EPERM; clone3 with ENOSYS.
   */
  seccomp?: boolean;
  /**
   * The signal the child gets when the thread that started it dies
   * (`PR_SET_PDEATHSIG`); `null` for none. Default `"SIGKILL"`.
   */
  parentDeathSignal?: SignalName | null;
  /** `PR_SET_NO_NEW_PRIVS`: execve never grants privileges (setuid). */
  noNewPrivileges?: boolean;
}

/** The name of an isolation layer (the option that asks for it). */
export type IsolationLayer =
  | "clearSignalHandlers"
  | "parentDeathSignal"
  | "userNamespace"
  | "identity"
  | "pidNamespace"
  | "networkNamespace"
  | "ipcNamespace"
  | "utsNamespace"
  | "cgroupNamespace"
  | "mountNamespace"
  | "newSession"
  | "limits"
  | "cgroupLimits"
  | "noNewPrivileges"
  | "landlock"
  | "seccomp";

/**
 * Every layer, in the order the child takes them: the keys of a
 * {@linkcode ProcessIsolationReport}.
 *
 * @example
 * ```ts
 * import { ISOLATION_LAYERS } from "@isola/isola";
 *
 * console.log(ISOLATION_LAYERS.includes("seccomp")); // true
 * ```
 */
export const ISOLATION_LAYERS: readonly IsolationLayer[] = Object.freeze([
  "clearSignalHandlers",
  "parentDeathSignal",
  "userNamespace",
  "identity",
  "pidNamespace",
  "networkNamespace",
  "ipcNamespace",
  "utsNamespace",
  "cgroupNamespace",
  "mountNamespace",
  "newSession",
  "limits",
  "cgroupLimits",
  "noNewPrivileges",
  "landlock",
  "seccomp",
]);

/** Which layers took effect for a child, one boolean per layer. */
export type ProcessIsolationReport = Record<IsolationLayer, boolean>;

/** The namespaces, each with its clone3 flag name. */
export const NAMESPACE_LAYERS = Object.freeze(
  [
    "userNamespace",
    "pidNamespace",
    "networkNamespace",
    "ipcNamespace",
    "utsNamespace",
    "cgroupNamespace",
    "mountNamespace",
  ] as const,
);

/** A namespace layer. */
export type NamespaceLayer = typeof NAMESPACE_LAYERS[number];

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Defaults of {@linkcode ProcessLimits}. */
export const DEFAULT_LIMITS: Readonly<Required<ProcessLimits>> = Object.freeze(
  { core: 0, nofile: 4096, fsize: GIB, nproc: 1024 },
);
/** Default size of the private `/tmp`: 64 MiB. */
export const DEFAULT_TMP_BYTES = 64 * MIB;

/** Validated isolation: the requested layers and their values. */
export interface ResolvedIsolation {
  /** Requested layers (later lowered to what took effect). */
  layers: ProcessIsolationReport;
  /** Layers whose absence is an error (the others are best effort). */
  required: Set<IsolationLayer>;
  /** The parent-death signal number, if any. */
  parentDeathSignal: number | null;
  /** Limits, if any. */
  limits: Required<ProcessLimits> | null;
  /** Paths; `tmp` null for none. */
  filesystem: { read: string[]; write: string[]; tmp: number | null };
  /** Whether `filesystem` was given. */
  filesystemGiven: boolean;
  /** `shareNetworkNamespace`. */
  shareNetwork: boolean;
}

function flag(
  iso: ProcessIsolation,
  name: keyof ProcessIsolation,
  dflt: boolean,
): boolean {
  const v = iso[name];
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") {
    throw new TypeError(`Invalid isolate.${name}: ${String(v)} (a boolean)`);
  }
  return v;
}

function paths(v: unknown, what: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    throw new TypeError(`Invalid ${what}: an array of absolute paths`);
  }
  return v.map((p, i) => {
    if (typeof p !== "string" || !p.startsWith("/") || p.includes("\0")) {
      throw new TypeError(
        `Invalid ${what}[${i}]: ${String(p)} (an absolute path)`,
      );
    }
    if (p.split("/").includes("..")) {
      throw new TypeError(`Invalid ${what}[${i}]: ${p} (no ".." allowed)`);
    }
    return p.length > 1 ? p.replace(/\/+$/, "").replace(/\/\/+/g, "/") : p;
  });
}

function positive(v: unknown, what: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`Invalid ${what}: ${String(v)} (an integer >= 0)`);
  }
  return v;
}

const NONE: ProcessIsolationReport = Object.freeze(
  Object.fromEntries(ISOLATION_LAYERS.map((l) => [l, false])),
) as ProcessIsolationReport;

/**
 * Validates `isolate` (and its nested options) into a
 * {@linkcode ResolvedIsolation}.
 *
 * @throws {TypeError} On a wrong type, naming the option.
 * @throws {RangeError} On a negative or fractional size or limit.
 */
export function resolveIsolation(
  isolate: boolean | ProcessIsolation | undefined,
): ResolvedIsolation {
  if (isolate === undefined || isolate === false) {
    return {
      layers: { ...NONE },
      required: new Set(),
      parentDeathSignal: null,
      limits: null,
      filesystem: { read: [], write: [], tmp: null },
      filesystemGiven: false,
      shareNetwork: false,
    };
  }
  if (isolate !== true && (typeof isolate !== "object" || isolate === null)) {
    throw new TypeError(
      `Invalid isolate: ${String(isolate)} (true, false or an object)`,
    );
  }
  const iso: ProcessIsolation = isolate === true ? {} : isolate;
  const user = flag(iso, "userNamespace", true);
  const fsOpt = iso.filesystem;
  if (fsOpt !== undefined && (typeof fsOpt !== "object" || fsOpt === null)) {
    throw new TypeError("Invalid isolate.filesystem: an object");
  }
  const tmp = fsOpt?.tmp === false
    ? null
    : positive(fsOpt?.tmp, "isolate.filesystem.tmp", DEFAULT_TMP_BYTES);
  const mount = flag(iso, "mountNamespace", user);
  const identity = flag(iso, "identity", user);
  if (mount && !user) {
    throw new TypeError("Invalid isolate.mountNamespace: needs userNamespace");
  }
  if (identity && !user) {
    throw new TypeError("Invalid isolate.identity: needs userNamespace");
  }
  const lim = iso.limits;
  if (
    lim !== undefined && lim !== false &&
    (typeof lim !== "object" || lim === null)
  ) {
    throw new TypeError("Invalid isolate.limits: false or an object");
  }
  const limits = lim === false ? null : {
    core: positive(lim?.core, "isolate.limits.core", DEFAULT_LIMITS.core),
    nofile: positive(
      lim?.nofile,
      "isolate.limits.nofile",
      DEFAULT_LIMITS.nofile,
    ),
    fsize: positive(lim?.fsize, "isolate.limits.fsize", DEFAULT_LIMITS.fsize),
    nproc: positive(lim?.nproc, "isolate.limits.nproc", DEFAULT_LIMITS.nproc),
  };
  const pds = iso.parentDeathSignal === undefined
    ? signalNumber("SIGKILL")
    : iso.parentDeathSignal === null
    ? null
    : signalNumber(iso.parentDeathSignal);
  const landlock = flag(iso, "landlock", mount || fsOpt !== undefined);
  const seccomp = flag(iso, "seccomp", true);
  const layers: ProcessIsolationReport = {
    clearSignalHandlers: true,
    parentDeathSignal: pds !== null,
    userNamespace: user,
    identity,
    pidNamespace: flag(iso, "pidNamespace", true),
    networkNamespace: flag(iso, "networkNamespace", true),
    ipcNamespace: flag(iso, "ipcNamespace", true),
    utsNamespace: flag(iso, "utsNamespace", true),
    cgroupNamespace: flag(iso, "cgroupNamespace", true),
    mountNamespace: mount,
    newSession: flag(iso, "newSession", true),
    limits: limits !== null,
    cgroupLimits: false,
    // Landlock and seccomp filters need it (landlock_restrict_self(2),
    // seccomp(2) without CAP_SYS_ADMIN).
    noNewPrivileges: flag(iso, "noNewPrivileges", true) || landlock || seccomp,
    landlock,
    seccomp,
  };
  const required = new Set<IsolationLayer>(
    ISOLATION_LAYERS.filter((l) => layers[l] && l !== "landlock"),
  );
  if (iso.landlock === true || (fsOpt !== undefined && !mount && landlock)) {
    required.add("landlock");
  }
  return {
    layers,
    required,
    parentDeathSignal: pds,
    limits,
    filesystem: {
      read: paths(fsOpt?.read, "isolate.filesystem.read"),
      write: paths(fsOpt?.write, "isolate.filesystem.write"),
      tmp,
    },
    filesystemGiven: fsOpt !== undefined,
    shareNetwork: flag(iso, "shareNetworkNamespace", true),
  };
}

/** Whether any layer other than the signal reset is requested. */
export function anyIsolation(r: ResolvedIsolation): boolean {
  return ISOLATION_LAYERS.some((l) =>
    l !== "clearSignalHandlers" && r.layers[l]
  );
}
