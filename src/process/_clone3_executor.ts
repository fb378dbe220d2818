/**
 * The clone3 executor: turns a resolved isolation into clone3 flags and
 * the child's op list (`_jail.ts` for the jail, the caller's descriptor
 * steps, Landlock, seccomp last), starts the child through the trampoline,
 * and when the kernel refuses a namespace finds which one, to fail with
 * {@linkcode ProcessIsolationError} or, with `allowUnisolated`, retry
 * without it.
 *
 * @module
 */
import { E, errnoName, SyscallError } from "../../ffi/errno.ts";
import {
  ChildOps,
  type Clone3Result,
  clone3Spawn,
  ignoredSignals,
  reapExited,
} from "../../ffi/clone3_trampoline.ts";
import { CLONE, cString } from "../../ffi/spawn.ts";
import { F, fcntl } from "../../ffi/unistd.ts";
import {
  handledRights,
  LANDLOCK_SCOPE,
  landlockAbi,
} from "../../ffi/landlock.ts";
import { threadIds, withThreadIdentity } from "../../ffi/identity.ts";
import { MS, OVERFLOW_ID } from "../../ffi/mount.ts";
import {
  type IsolationLayer,
  NAMESPACE_LAYERS,
  type NamespaceLayer,
  type ProcessIsolationReport,
} from "./isolation.ts";
import {
  jailOps,
  type JailProc,
  landlockRules,
  planView,
  type ViewEntry,
} from "./_jail.ts";
import { jailFilter } from "./_seccomp_policy.ts";
import { cgroupLimitsUnavailable } from "./_cgroup.ts";
import { ProcessIsolationError, ProcessSpawnError } from "./errors.ts";
import { userNamespaceCauses } from "./_userns_diagnosis.ts";
import { maxTarget, type SpawnPlan, type SpawnStarted } from "./_spawn_plan.ts";
import {
  abandonSharedNetwork,
  SCOPED_LANDLOCK_ABI,
  sharedNetwork,
} from "./_shared_network.ts";

/**
 * clone3 returned ENOSYS: the kernel lacks it or a seccomp filter refuses
 * it. `Process.start` then uses posix_spawn (isolation unavailable).
 */
export class Clone3UnavailableError extends Error {
  /** Builds the error. */
  constructor() {
    super("clone3 is not available (ENOSYS)");
    this.name = "Clone3UnavailableError";
  }
}

/** The clone3 flag of each namespace layer. */
const NAMESPACE_FLAG: Readonly<Record<NamespaceLayer, bigint>> = Object.freeze({
  userNamespace: CLONE.CLONE_NEWUSER,
  pidNamespace: CLONE.CLONE_NEWPID,
  networkNamespace: CLONE.CLONE_NEWNET,
  ipcNamespace: CLONE.CLONE_NEWIPC,
  utsNamespace: CLONE.CLONE_NEWUTS,
  cgroupNamespace: CLONE.CLONE_NEWCGROUP,
  mountNamespace: CLONE.CLONE_NEWNS,
});

/**
 * Times one spawn starts its first stage again after a signal killed it
 * (clone3Spawn reports ECHILD); then sharing is given up.
 */
const FIRST_STAGE_RETRIES = 3;

/** Layers that exist only inside the child's own user namespace. */
const NEEDS_USER_NAMESPACE: readonly IsolationLayer[] = [
  "identity",
  "mountNamespace",
];

// What clone3 returns when a namespace is refused: EPERM (sysctl,
// AppArmor, seccomp), EACCES, ENOSPC (user.max_*_namespaces), EUSERS
// (nesting depth), EINVAL (a combination the kernel does not support).
const NAMESPACE_ERRNOS: ReadonlySet<number> = new Set([
  E.EPERM,
  E.EACCES,
  E.EINVAL,
  E.ENOSPC,
  E.EUSERS,
]);

/**
 * Starts the child of `job` through the trampoline.
 *
 * @throws {ProcessSpawnError} If a step or execve fails in the child.
 * @throws {ProcessIsolationError} If a required layer is unavailable and
 *   `allowUnisolated` is not set.
 */
export function startJailed(job: SpawnPlan): SpawnStarted {
  const { iso, notApplied } = job;
  const layers = { ...iso.layers };
  const give = (l: IsolationLayer, why: string) => {
    if (!layers[l]) return;
    if (iso.required.has(l) && !job.allowUnisolated) {
      throw new ProcessIsolationError([l], why);
    }
    notApplied.push(`${l}: ${why}`);
    layers[l] = false;
  };
  let abi = 0;
  if (layers.landlock) {
    abi = landlockAbi();
    if (abi < 1) {
      give(
        "landlock",
        `Landlock unavailable (${
          errnoName(-abi)
        }; Linux 5.13+ with landlock in lsm=)`,
      );
    }
  }
  let proc: JailProc = "none";
  if (layers.mountNamespace && !layers.pidNamespace) {
    notApplied.push(
      "mountNamespace: no /proc (a private one needs pidNamespace)",
    );
  } else if (layers.mountNamespace) {
    proc = procMountable() ? "own" : "self";
    if (proc === "self") notApplied.push(`mountNamespace: ${PROC_REFUSED}`);
  }
  const anyLayer = Object.entries(layers).some(([k, v]) =>
    v && k !== "clearSignalHandlers"
  );
  if (anyLayer) {
    notApplied.push(`cgroupLimits: ${cgroupLimitsUnavailable()}`);
  }
  let view: ViewEntry[] | null | undefined;
  let killedFirstStages = 0;
  for (;;) {
    if (layers.mountNamespace && view === undefined) {
      view = planView(iso, job.program, threadIds().uid[1] === 0, job.temps);
    }
    const { r, shared, id } = spawnOnce(
      job,
      layers,
      layers.mountNamespace ? view! : null,
      abi,
      layers.pidNamespace ? proc : "none",
    );
    if (r.kind === "ok") {
      return {
        pid: r.pid,
        pidfd: r.pidfd,
        report: layers,
        sharedNetworkNamespace: shared,
      };
    }
    if (
      shared && r.kind === "child-failed" &&
      (r.step === "clone3" || r.step.startsWith("setns"))
    ) {
      reapExited(r.pidfd);
      // A signal it could not block (SIGKILL) ended the first stage before
      // its clone (ECHILD): nothing failed, so it is tried again. Any other
      // failure of the first stage ends sharing, and this child gets its
      // own network namespace (a refusal is then found below).
      const killed = r.step === "clone3" && r.errno === E.ECHILD &&
        killedFirstStages++ < FIRST_STAGE_RETRIES;
      if (!killed) abandonSharedNetwork(id);
      continue;
    }
    if (r.kind === "child-failed") {
      reapExited(r.pidfd);
      throw new ProcessSpawnError(r.errno, r.step, job.program);
    }
    const wanted = NAMESPACE_LAYERS.filter((l) => layers[l]);
    if (r.errno === E.ENOSYS) {
      // No clone3 (Linux < 5.3) or a seccomp filter refusing it, as isola's
      // own jail does: the caller falls back to posix_spawn.
      throw new Clone3UnavailableError();
    }
    if (wanted.length === 0 || !NAMESPACE_ERRNOS.has(r.errno)) {
      throw new ProcessSpawnError(r.errno, "clone3", job.program);
    }
    const refused = refusedNamespaces(wanted, layers.userNamespace);
    let errnoValue = r.errno;
    for (const [, e] of refused) errnoValue = e;
    const names = refused.length > 0 ? refused.map(([l]) => l) : wanted; // each alone works, not together
    const cause = new SyscallError(errnoValue, "clone3", "Cannot spawn");
    const causes = names.includes("userNamespace") ? userNamespaceCauses() : [];
    const why = `refused by the kernel (clone3 failed with ${
      errnoName(errnoValue)
    }; ${
      causes.length > 0
        ? causes.join("; ")
        : "see user_namespaces(7), sysctl user.max_user_namespaces, " +
          "kernel.apparmor_restrict_unprivileged_userns"
    })`;
    const mustHave = names.filter((l) => iso.required.has(l));
    if (mustHave.length > 0 && !job.allowUnisolated) {
      throw new ProcessIsolationError(names, why, { cause });
    }
    for (const l of names) give(l, why);
    if (!layers.userNamespace) {
      for (const l of NEEDS_USER_NAMESPACE) give(l, "needs userNamespace");
    }
  }
}

/**
 * A spare close-on-exec descriptor number above every target, for the
 * child to overwrite (closed after the spawn).
 */
function reserve(job: SpawnPlan): number {
  const fd = fcntl(job.stdio[0], F.F_DUPFD_CLOEXEC, maxTarget(job) + 1);
  if (fd < 0) throw new ProcessSpawnError(-fd, "fcntl", job.program);
  job.temps.push(fd);
  return fd;
}

/**
 * The descriptor steps: 0-2 from their sources, kept ones with
 * FD_CLOEXEC cleared (libcamera's `closeAllFdsExcept`: same numbers),
 * close_range over every gap and above the last; then the cwd (in the
 * minimal root without a `cwd` option: the inherited one, if shown).
 */
function fdSetup(ops: ChildOps, job: SpawnPlan, inRoot: boolean): void {
  for (let t = 0; t < 3; t++) {
    if (job.stdio[t] === t) ops.keepFd(t);
    else ops.dup(job.stdio[t], t);
  }
  for (const fd of job.keep) ops.keepFd(fd);
  const targets = [0, 1, 2, ...[...job.keep].sort((a, b) => a - b)];
  for (let i = 0; i < targets.length; i++) {
    const lo = targets[i] + 1;
    const hi = i + 1 < targets.length ? targets[i + 1] - 1 : -1;
    if (hi < 0 || hi >= lo) ops.closeRange(lo, hi);
  }
  if (job.exec.cwd !== undefined) ops.chdir(job.exec.cwd);
  else if (inRoot && job.inheritedCwd !== null) {
    // pivot_root left the child in the new "/": back to the directory it
    // inherited, where the jail shows it (relative paths keep working).
    ops.chdirIfVisible(job.inheritedCwd);
  }
}

/** What one attempt did: the trampoline's result, and whether it shared the network namespace. */
interface Attempt {
  r: Clone3Result;
  shared: boolean;
  /** The id the child runs as. */
  id: number;
}

function spawnOnce(
  job: SpawnPlan,
  layers: ProcessIsolationReport,
  view: ViewEntry[] | null,
  abi: number,
  proc: JailProc,
): Attempt {
  let flags = CLONE.CLONE_CLEAR_SIGHAND;
  for (const l of NAMESPACE_LAYERS) if (layers[l]) flags |= NAMESPACE_FLAG[l];
  const iso = { ...job.iso, layers };
  const ids = threadIds();
  const rootHost = ids.uid[1] === 0;
  const drop = rootHost && layers.userNamespace && layers.identity;
  const id = drop ? OVERFLOW_ID : ids.uid[1];
  const gid = drop ? OVERFLOW_ID : ids.gid[1];
  const ops = new ChildOps();
  // With Landlock's abstract-socket scope the children can share one
  // empty network namespace (_shared_network.ts): two stages, the first
  // joins it, the second is the child. seccomp refuses NETLINK_USERSOCK,
  // on which children in one namespace could otherwise talk.
  const net = job.iso.shareNetwork && layers.networkNamespace &&
      layers.userNamespace && layers.landlock && layers.seccomp &&
      abi >= SCOPED_LANDLOCK_ABI
    ? sharedNetwork(id, gid, drop)
    : null;
  let stage: ReturnType<ChildOps["cloneStage"]> | undefined;
  if (net !== null) {
    // The first task starts with every signal blocked (clone3Spawn masks
    // this thread's around the clone; the second resets its mask): one
    // that ended it before the second had exec'd would let the parent
    // resume while the second still runs in its memory.
    ops.setns(net.user, CLONE.CLONE_NEWUSER).setns(net.net, CLONE.CLONE_NEWNET);
    stage = ops.cloneStage(flags & ~CLONE.CLONE_NEWNET);
    flags = CLONE.CLONE_CLEAR_SIGHAND;
  }
  ops.resetSignals(ignoredSignals());
  if (iso.parentDeathSignal !== null && layers.parentDeathSignal) {
    // In its own PID namespace the child's parent is outside it:
    // getppid() is 0 there (pid_namespaces(7)).
    ops.parentDeathSignal(
      iso.parentDeathSignal,
      layers.pidNamespace ? 0 : Deno.pid,
    );
  }
  jailOps(ops, iso, {
    uid: id,
    gid,
    rootHost,
    reserve: () => reserve(job),
    view,
    proc,
  });
  if (layers.noNewPrivileges) ops.noNewPrivs();
  if (layers.landlock) {
    const ruleset = reserve(job);
    const scratch = reserve(job);
    ops.landlockCreate(
      handledRights(abi),
      ruleset,
      abi >= SCOPED_LANDLOCK_ABI ? LANDLOCK_SCOPE.ABSTRACT_UNIX_SOCKET : 0,
    );
    for (const [path, rights] of landlockRules(iso, view, abi)) {
      ops.landlockAllow(ruleset, path, rights, scratch);
    }
    ops.landlockRestrict(ruleset);
  }
  fdSetup(ops, job, view !== null);
  // Last: nothing after it may need a call it refuses.
  if (layers.seccomp) ops.seccompFilter(jailFilter());
  const spawn = () =>
    clone3Spawn({
      flags,
      ops,
      path: job.exec.path,
      argv: job.exec.argv,
      envp: job.exec.envp,
      stage,
    });
  // A root parent lends the child an unprivileged identity for the clone:
  // the user namespace is then owned by that id, which is the only one the
  // child can map (user_namespaces(7)). libcamera's isolated IPA keeps
  // kernel uid 0 on a root host.
  const r = drop ? withThreadIdentity(id, spawn) : spawn();
  return { r, shared: net !== null, id };
}

/** Which of `wanted` the kernel refuses, each tried alone (with a user namespace where one works). */
function refusedNamespaces(
  wanted: NamespaceLayer[],
  withUser: boolean,
): [NamespaceLayer, number][] {
  const out: [NamespaceLayer, number][] = [];
  let userOk = false;
  if (withUser) {
    const e = probeNamespace(CLONE.CLONE_NEWUSER);
    if (e !== 0) out.push(["userNamespace", e]);
    else userOk = true;
  }
  for (const l of wanted) {
    if (l === "userNamespace") continue;
    // Without its own user namespace a namespace needs CAP_SYS_ADMIN;
    // with one it is checked against that namespace.
    const e = probeNamespace(
      NAMESPACE_FLAG[l] | (userOk ? CLONE.CLONE_NEWUSER : 0n),
    );
    if (e !== 0) out.push([l, e]);
  }
  return out;
}

const PROC_REFUSED = "/proc holds only /proc/self (the kernel refuses " +
  "a new proc while mounts cover parts of the host's, as in bubblewrap " +
  "or a container: mount_too_revealing)";

let procOk: boolean | undefined;

/**
 * Whether a child in its own user, PID and mount namespaces may mount a
 * proc: the kernel refuses it (EPERM) where the visible `/proc` has mounts
 * over parts of it (bubblewrap's `--proc`, a container's masked paths).
 * Probed once per realm with a child that only mounts it and exits.
 */
function procMountable(): boolean {
  if (procOk !== undefined) return procOk;
  const r = clone3Spawn({
    flags: CLONE.CLONE_NEWUSER | CLONE.CLONE_NEWPID | CLONE.CLONE_NEWNS |
      CLONE.CLONE_CLEAR_SIGHAND,
    ops: new ChildOps()
      .mount(null, "/", null, MS.MS_REC | MS.MS_PRIVATE)
      .mount("proc", "/proc", "proc", MS.MS_NOSUID | MS.MS_NODEV)
      .exit(0),
    path: cString("/"),
    argv: new BigUint64Array(1),
    envp: null,
  });
  if (r.kind === "clone-failed") return true; // the spawn itself says why
  reapExited(r.pidfd);
  procOk = r.kind === "ok" || r.errno !== E.EPERM;
  return procOk;
}

/**
 * Whether the kernel lets us create the namespaces in `flags`: a clone3
 * whose child exits at once. Returns 0 or the errno.
 */
function probeNamespace(flags: bigint): number {
  const r = clone3Spawn({
    flags: flags | CLONE.CLONE_CLEAR_SIGHAND,
    ops: new ChildOps().exit(0),
    path: cString("/"),
    argv: new BigUint64Array(1),
    envp: null,
  });
  if (r.kind === "clone-failed") return r.errno;
  reapExited(r.pidfd);
  return 0;
}
