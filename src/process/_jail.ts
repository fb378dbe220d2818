/**
 * The jail: what an isolated child does between clone3 and execve, as a
 * list of raw system calls ({@linkcode ChildOps}) for the trampoline. The
 * parent prepares everything that needs its own privileges or JavaScript
 * (which paths exist, descriptors of the bind sources, the seccomp
 * program); the child only makes the calls, in this order:
 *
 * 1. identity: `/proc/self/setgroups` deny, its own uid and gid map (the
 *    parent is suspended by `CLONE_VFORK` and cannot write them), and on a
 *    root host `setresuid` to clear the real and saved uid 0;
 * 2. hostname (UTS namespace);
 * 3. the minimal root: every mount private, a tmpfs on `/tmp` of the old
 *    view as the new root, `/proc`, `/dev`, `/tmp`, read-only binds of
 *    the system directories, the program and the `read` paths, writable
 *    binds of the `write` paths, then `pivot_root` and a read-only `/`;
 * 4. `setsid`, a new session keyring; resource limits;
 * 5. (by the caller) no_new_privs, Landlock built from the child's own
 *    view, descriptors, cwd, and the seccomp filter last.
 *
 * @module
 */
import { E, SyscallError } from "../../ffi/errno.ts";
import { rootAsNobodyUserns } from "./_idmap.ts";
import { ChildOps } from "../../ffi/clone3_trampoline.ts";
import {
  detachedTree,
  type FileKind,
  fileKind,
  fileMode,
  MNT_DETACH,
  MOUNT_ATTR,
  MS,
  RLIMIT,
  S_MODE,
} from "../../ffi/mount.ts";
import { handledRights, LANDLOCK_FS } from "../../ffi/landlock.ts";
import { O, open } from "../../ffi/spawn.ts";
import { close, readlink } from "../../ffi/unistd.ts";
import type { ResolvedIsolation } from "./isolation.ts";

/**
 * Host paths every jailed program gets read-only, where they exist. The
 * dynamic loader reads only `/etc/ld.so.cache` (ld.so(8));
 * `/etc/ld.so.conf` is ldconfig's input and is not shown.
 */
export const SYSTEM_PATHS: readonly string[] = Object.freeze([
  "/usr",
  "/bin",
  "/sbin",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/etc/ld.so.cache",
  "/etc/localtime",
  "/etc/alternatives",
]);

/** What a path is on the host: its mode (or -errno), and for a symlink its target and resolved path. */
interface PathInfo {
  mode: number;
  target?: string | null;
  real?: string | null;
}

// The system paths are looked up once per process: the distribution's
// layout does not change under a running program, and each jailed spawn
// would otherwise pay ~30 system calls for them.
let systemInfo: Map<string, PathInfo> | undefined;

function lookUp(path: string, mode: number): PathInfo {
  if (kindOf(mode) !== "symlink") return { mode };
  const t = readlink(path);
  return {
    mode,
    target: typeof t === "string" ? t : null,
    real: realPath(path),
  };
}

function systemPathInfo(): Map<string, PathInfo> {
  systemInfo ??= new Map(
    SYSTEM_PATHS.map((p) => [p, lookUp(p, fileMode(p))]),
  );
  return systemInfo;
}

/** Device nodes of the jail's `/dev` (bind mounts of the host's). */
export const JAIL_DEVICES: readonly string[] = Object.freeze([
  "null",
  "zero",
  "full",
  "random",
  "urandom",
]);

/** Directories the jail makes itself; host paths beneath them are not shown. */
const PROVIDED = ["/proc", "/dev"];

/** The hostname in the jail's UTS namespace. */
export const JAIL_HOSTNAME = "isola";

// Where the new root is assembled: a directory of the old view every
// user can search; the tmpfs mounted there is the new root.
const BUILD_DIR = "/tmp";
const O_PATH = 0o10000000;
const DIR_MODE = 0o755;
const FILE_MODE = 0o644;
const DEVICE_MODE = 0o666;
const TMP_MODE = 0o1777;
/** Size of the root tmpfs when there is no /tmp: directories and mount points only. */
const ROOT_BYTES = 1024 * 1024;

/** One host path shown in the jail. */
export interface ViewEntry {
  /** The path, the same inside and outside. */
  path: string;
  /** What it is on the host. */
  kind: FileKind;
  /** Writable (a `write` path) or read-only. */
  writable: boolean;
  /** For a symlink: its target, recreated as is. */
  target?: string;
  /** For a bind on a root host: the detached mount tree the parent made. */
  fd?: number;
}

function under(path: string, dir: string): boolean {
  return dir === "/" || path === dir || path.startsWith(dir + "/");
}

/**
 * The host paths of the jail, parents first. Missing paths are skipped; a
 * symlink is recreated and its target shown too. With `detach` (a root
 * parent, whose child runs as uid 65534 and may not be able to look the
 * paths up) each bind source is a detached mount tree, already read-only
 * where it should be; its descriptor is pushed to `fds` for the caller to
 * close after the spawn.
 *
 * @throws {SyscallError} If a detached tree cannot be made.
 */
export function planView(
  iso: ResolvedIsolation,
  program: string,
  detach: boolean,
  fds: number[],
): ViewEntry[] {
  const wanted: [string, boolean][] = [
    ...SYSTEM_PATHS.map((p) => [p, false] as [string, boolean]),
    [program, false],
    ...iso.filesystem.read.map((p) => [p, false] as [string, boolean]),
    ...iso.filesystem.write.map((p) => [p, true] as [string, boolean]),
  ];
  // Each path is looked up once (parents are shared by many); the system
  // paths once per process.
  const info = new Map(systemPathInfo());
  const modeOf = (p: string) => {
    const i = info.get(p);
    if (i !== undefined) return i.mode;
    const m = fileMode(p);
    info.set(p, { mode: m }); // a shown symlink gets its target below
    return m;
  };
  const entries = new Map<string, ViewEntry>();
  for (let i = 0; i < wanted.length; i++) {
    const [path, writable] = wanted[i];
    // The jail makes its own /proc and /dev.
    if (PROVIDED.some((d) => under(path, d))) continue;
    const kind = kindOf(modeOf(path));
    if (kind === null) continue; // absent: nothing to show
    const had = entries.get(path);
    if (had !== undefined) {
      had.writable ||= writable;
      continue;
    }
    if (kind === "symlink") {
      let pi = info.get(path)!;
      if (pi.target === undefined) info.set(path, pi = lookUp(path, pi.mode));
      const { target, real } = pi;
      if (typeof target !== "string") continue;
      entries.set(path, { path, kind, writable, target });
      if (real != null && real !== path) wanted.push([real, writable]);
      continue;
    }
    entries.set(path, { path, kind, writable });
  }
  // Parents first; skip what an earlier directory bind already shows
  // with the same or more rights.
  const sorted = [...entries.values()].sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0
  );
  const out: ViewEntry[] = [];
  let idmap: number | undefined;
  const links = sorted.filter((e) => e.kind === "symlink").map((e) => e.path);
  for (const e of sorted) {
    // Under a recreated symlink: shown through it, at its target.
    if (links.some((l) => l !== e.path && under(e.path, l))) continue;
    const cover = out.find((d) =>
      d.kind === "dir" && under(e.path, d.path) && d.path !== e.path
    );
    if (cover !== undefined && (cover.writable || !e.writable)) continue;
    // A root host's child (uid 65534) binds what it can look up itself;
    // the parent detaches the rest, idmapped when 65534 could not read it.
    const idmapped = detach && !e.writable && !othersMayRead(e.path, modeOf);
    if (
      detach && e.kind !== "symlink" &&
      (idmapped || !othersMaySearchTo(e.path, modeOf))
    ) {
      if (idmapped && idmap === undefined) {
        idmap = rootAsNobodyUserns();
        if (idmap >= 0) fds.push(idmap);
      }
      // Read-only binds idmapped where the filesystem allows it (EINVAL:
      // it does not), so root's files there are the child's to read.
      let fd = detachedTree(
        e.path,
        bindAttrs(e.writable),
        idmapped ? idmap! : -1,
      );
      if (fd === -E.EINVAL && idmapped) {
        fd = detachedTree(e.path, bindAttrs(e.writable));
      }
      if (fd < 0) {
        throw new SyscallError(
          -fd,
          "open_tree",
          `Cannot show ${e.path} in the jail`,
        );
      }
      fds.push(fd);
      e.fd = fd;
    }
    out.push(e);
  }
  return out;
}

/** The kind of a `fileMode` result, or null for an error. */
function kindOf(mode: number): FileKind | null {
  if (mode < 0) return null;
  const type = mode & S_MODE.S_IFMT;
  return type === S_MODE.S_IFDIR
    ? "dir"
    : type === S_MODE.S_IFLNK
    ? "symlink"
    : "file";
}

/** Whether "others" may read `path` (and list it, for a directory). */
function othersMayRead(
  path: string,
  modeOf: (p: string) => number,
): boolean {
  const m = modeOf(path);
  if (m < 0) return false;
  const need = (m & S_MODE.S_IFDIR) === S_MODE.S_IFDIR
    ? S_MODE.S_IROTH | S_MODE.S_IXOTH
    : S_MODE.S_IROTH;
  return (m & need) === need;
}

/** Whether "others" may search every directory above `path`. */
function othersMaySearchTo(
  path: string,
  modeOf: (p: string) => number,
): boolean {
  for (let i = path.lastIndexOf("/"); i > 0; i = path.lastIndexOf("/", i - 1)) {
    const m = modeOf(path.slice(0, i));
    if (m < 0 || (m & S_MODE.S_IXOTH) === 0) return false;
  }
  return true;
}

function bindAttrs(writable: boolean): number {
  return (writable ? 0 : MOUNT_ATTR.RDONLY) | MOUNT_ATTR.NOSUID |
    MOUNT_ATTR.NODEV;
}

/** The path with every symlink resolved, or null if it does not resolve. */
function realPath(path: string): string | null {
  const fd = open(path, O_PATH | O.O_CLOEXEC);
  if (fd < 0) return null;
  const real = readlink(`/proc/self/fd/${fd}`);
  close(fd);
  return typeof real === "string" ? real : null;
}

/**
 * The jail's `/proc`: `"own"`, a proc of the child's PID namespace (only
 * its processes); `"self"`, only `/proc/self`, a read-only bind of the
 * child's own directory in the host's proc (where the kernel refuses a new
 * proc because mounts cover parts of the host's: bubblewrap, containers;
 * mount_too_revealing in fs/namespace.c); `"none"`, no `/proc`.
 */
export type JailProc = "own" | "self" | "none";

/** What the jail's ops need besides the resolved isolation. */
export interface JailContext {
  /** The child's uid and gid outside (65534 on a root host). */
  uid: number;
  /** See `uid`. */
  gid: number;
  /** Whether the parent is root (the child must clear its saved uid). */
  rootHost: boolean;
  /** A spare descriptor number the child may overwrite. */
  reserve: () => number;
  /** The host paths to show (from {@linkcode planView}), or null: no mount namespace. */
  view: ViewEntry[] | null;
  /** The minimal root's `/proc` (see {@linkcode JailProc}). */
  proc: JailProc;
}

/**
 * The ops by which a task in a new user namespace maps only itself: uid
 * and gid as they are outside.
 */
export function mapSelf(ops: ChildOps, uid: number, gid: number): ChildOps {
  // Unprivileged map writes need setgroups denied first, and /proc/self
  // files owned by the task (user_namespaces(7)).
  return ops.dumpable()
    .writeFile("/proc/self/setgroups", "deny")
    .writeFile("/proc/self/uid_map", `${uid} ${uid} 1\n`)
    .writeFile("/proc/self/gid_map", `${gid} ${gid} 1\n`);
}

/** Identity, hostname, minimal root, session and limits, in order. */
export function jailOps(
  ops: ChildOps,
  iso: ResolvedIsolation,
  ctx: JailContext,
): void {
  const l = iso.layers;
  if (l.userNamespace) {
    mapSelf(ops, ctx.uid, ctx.gid);
    if (ctx.rootHost && l.identity) {
      ops.setGid(ctx.gid).setUid(ctx.uid); // the saved uid was still 0
    }
  }
  if (l.utsNamespace) ops.hostname(JAIL_HOSTNAME);
  if (ctx.view !== null) {
    ops.append(minimalRootOps(iso, ctx.view, ctx.reserve, ctx.proc));
  }
  if (l.newSession) ops.setsid().newSessionKeyring();
  if (iso.limits !== null) {
    const lim = iso.limits;
    const set = (name: string, res: number, v: number) =>
      ops.rlimit(name, res, BigInt(v), BigInt(v));
    set("RLIMIT_CORE", RLIMIT.RLIMIT_CORE, lim.core);
    set("RLIMIT_NOFILE", RLIMIT.RLIMIT_NOFILE, lim.nofile);
    set("RLIMIT_FSIZE", RLIMIT.RLIMIT_FSIZE, lim.fsize);
    // Counted per user namespace: without one it would count every
    // process of the caller's uid.
    if (l.userNamespace) set("RLIMIT_NPROC", RLIMIT.RLIMIT_NPROC, lim.nproc);
  }
}

// The minimal root's ops for the last few views: a program spawned again
// with the same options (and, as usual, the same spare descriptor numbers)
// reuses its op list instead of encoding ~50 system calls again.
const rootOpsCache = new Map<string, ChildOps>();
const ROOT_OPS_CACHED = 8;

function minimalRootOps(
  iso: ResolvedIsolation,
  view: ViewEntry[],
  reserve: () => number,
  proc: JailProc,
): ChildOps {
  // Each bind source the parent did not detach gets a spare number.
  const fds = view.map((e) =>
    e.kind === "symlink" || e.fd !== undefined ? -1 : reserve()
  );
  const key = JSON.stringify([view, fds, proc, iso.filesystem.tmp]);
  let ops = rootOpsCache.get(key);
  if (ops === undefined) {
    ops = new ChildOps();
    minimalRoot(ops, iso, view, fds, proc);
    if (rootOpsCache.size >= ROOT_OPS_CACHED) {
      rootOpsCache.delete(rootOpsCache.keys().next().value!);
    }
    rootOpsCache.set(key, ops);
  }
  return ops;
}

function minimalRoot(
  ops: ChildOps,
  iso: ResolvedIsolation,
  view: ViewEntry[],
  sourceFds: number[],
  proc: JailProc,
): void {
  const at = (p: string) => BUILD_DIR + (p === "/" ? "" : p);
  const made = new Set<string>(["/"]);
  const bound: string[] = [];
  const ensureParents = (path: string) => {
    const parts = path.split("/").filter((s) => s !== "");
    let cur = "";
    for (const part of parts.slice(0, -1)) {
      cur += "/" + part;
      if (made.has(cur) || bound.some((b) => under(cur, b))) continue;
      ops.mkdir(at(cur), DIR_MODE);
      made.add(cur);
    }
  };
  const newDir = (path: string) => {
    ensureParents(path);
    if (!made.has(path)) ops.mkdir(at(path), DIR_MODE);
    made.add(path);
  };
  const lock = bindAttrs(true);

  // Nothing done here may propagate back to the host's mounts.
  ops.mount(null, "/", null, MS.MS_REC | MS.MS_PRIVATE);
  // Sources the parent did not detach are opened now, in the child's own
  // mount namespace (a bind's source must be there) and before the new
  // root hides them (it is built on /tmp, where sources may live).
  const sourceFd = new Map<string, number>();
  view.forEach((e, i) => {
    if (sourceFds[i] < 0) return;
    ops.openPathAt(e.path, sourceFds[i]);
    sourceFd.set(e.path, sourceFds[i]);
  });
  // One tmpfs for the root and /tmp (a superblock costs a mount and a
  // teardown): its size bounds what /tmp can hold.
  ops.mount(
    "tmpfs",
    BUILD_DIR,
    "tmpfs",
    MS.MS_NOSUID | MS.MS_NODEV,
    `mode=0755,size=${iso.filesystem.tmp ?? ROOT_BYTES}`,
  );
  if (iso.filesystem.tmp !== null) {
    // Sticky and writable by all, whatever the umask; a bind of itself so
    // it stays writable when the root is made read-only.
    ops.mkdirExact(at("/tmp"), TMP_MODE);
    made.add("/tmp");
    ops.mount(at("/tmp"), at("/tmp"), null, MS.MS_BIND);
  }
  if (proc === "self") {
    // The source resolves to the child's own /proc/<pid> of the host's
    // proc, which stays its directory across execve; no other process
    // and nothing system-wide is shown.
    newDir("/proc/self");
    ops.mount("/proc/self", at("/proc/self"), null, MS.MS_BIND | MS.MS_REC);
    ops.mountSetattr(
      at("/proc/self"),
      MOUNT_ATTR.RDONLY | lock | MOUNT_ATTR.NOEXEC,
    );
  } else if (proc === "own") {
    // A proc of the child's own PID namespace: only its processes.
    newDir("/proc");
    ops.mount(
      "proc",
      at("/proc"),
      "proc",
      MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC,
    );
    ops.mount(at("/proc/sys"), at("/proc/sys"), null, MS.MS_BIND | MS.MS_REC);
    ops.mountSetattr(
      at("/proc/sys"),
      MOUNT_ATTR.RDONLY | lock | MOUNT_ATTR.NOEXEC,
    );
  }
  newDir("/dev");
  for (const d of JAIL_DEVICES) {
    ops.mkfile(at(`/dev/${d}`), DEVICE_MODE);
    ops.mount(`/dev/${d}`, at(`/dev/${d}`), null, MS.MS_BIND);
    ops.mountSetattr(
      at(`/dev/${d}`),
      MOUNT_ATTR.NOSUID | MOUNT_ATTR.NOEXEC,
      false,
    );
  }
  ops.symlink("/proc/self/fd", at("/dev/fd"));
  ["stdin", "stdout", "stderr"].forEach((name, i) =>
    ops.symlink(`/proc/self/fd/${i}`, at(`/dev/${name}`))
  );
  for (const e of view) {
    if (e.kind === "symlink") continue;
    const shown = bound.some((b) => under(e.path, b));
    if (!shown) {
      if (e.kind === "dir") newDir(e.path);
      else {
        ensureParents(e.path);
        ops.mkfile(at(e.path), FILE_MODE);
      }
    }
    if (e.fd !== undefined) ops.moveMount(e.fd, at(e.path));
    else {
      ops.mount(
        `/proc/self/fd/${sourceFd.get(e.path)}`,
        at(e.path),
        null,
        MS.MS_BIND | MS.MS_REC,
      );
      ops.mountSetattr(at(e.path), bindAttrs(e.writable), e.kind === "dir");
    }
    if (e.kind === "dir") bound.push(e.path);
  }
  // Symlinks last: their targets may be binds made above.
  for (const e of view) {
    if (e.kind !== "symlink" || bound.some((b) => under(e.path, b))) continue;
    ensureParents(e.path);
    ops.symlink(e.target!, at(e.path));
  }
  // pivot_root(".", ".") stacks the old root on the new one; detaching
  // it leaves only the new root (pivot_root(2), NOTES).
  ops.chdirTo(BUILD_DIR);
  ops.pivotRoot(".", ".");
  ops.umount(".", MNT_DETACH);
  ops.chdirTo("/");
  ops.mountSetattr("/", MOUNT_ATTR.RDONLY | lock, false);
}

/** Landlock rights: read-only, and everything (`abi` known rights). */
export function landlockRights(
  abi: number,
): { ro: number; rw: number; file: number } {
  return {
    ro: LANDLOCK_FS.EXECUTE | LANDLOCK_FS.READ_FILE | LANDLOCK_FS.READ_DIR,
    rw: handledRights(abi),
    file: LANDLOCK_FS.EXECUTE | LANDLOCK_FS.WRITE_FILE | LANDLOCK_FS.READ_FILE |
      LANDLOCK_FS.TRUNCATE | LANDLOCK_FS.IOCTL_DEV,
  };
}

/**
 * The Landlock rules as the child sees its files: `[path, rights]`. With
 * the minimal root, `/` read-only covers every read-only path shown (the
 * root holds nothing else: a rule per path would cost the child four
 * system calls each), then the writable paths, `/dev`'s nodes (read and
 * write, no new entries) and `/tmp`. Without: the `filesystem` paths that
 * exist.
 */
export function landlockRules(
  iso: ResolvedIsolation,
  view: ViewEntry[] | null,
  abi: number,
): [string, number][] {
  const r = landlockRights(abi);
  const handled = handledRights(abi);
  const rule = (
    path: string,
    kind: FileKind,
    writable: boolean,
  ): [string, number] => {
    const rights = writable ? r.rw : r.ro;
    return [path, (kind === "dir" ? rights : rights & r.file) & handled];
  };
  if (view === null) {
    const out: [string, number][] = [];
    for (
      const [list, w] of [[iso.filesystem.read, false], [
        iso.filesystem.write,
        true,
      ]] as const
    ) {
      for (const p of list) {
        const k = fileKind(p);
        if (typeof k !== "number") {
          out.push(rule(p, k === "symlink" ? "file" : k, w));
        }
      }
    }
    return out;
  }
  const out: [string, number][] = [rule("/", "dir", false)];
  for (const e of view) {
    if (e.writable && e.kind !== "symlink") {
      out.push(rule(e.path, e.kind, true));
    }
  }
  out.push(["/dev", (r.rw & r.file & handled) | LANDLOCK_FS.READ_DIR]);
  if (iso.filesystem.tmp !== null) out.push(rule("/tmp", "dir", true));
  return out;
}
