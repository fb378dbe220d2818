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
} from "../../ffi/clone3_trampoline.ts";
import { CLONE, cString, W, waitidPidfd } from "../../ffi/spawn.ts";
import { close as closeFd } from "../../ffi/unistd.ts";
import { handledRights, landlockAbi } from "../../ffi/landlock.ts";
import { threadIds, withThreadIdentity } from "../../ffi/identity.ts";
import { OVERFLOW_ID } from "../../ffi/mount.ts";
import {
  type IsolationLayer,
  NAMESPACE_LAYERS,
  type NamespaceLayer,
  type ProcessIsolationReport,
  type ResolvedIsolation,
} from "./isolation.ts";
import { jailOps, landlockRules, planView, type ViewEntry } from "./_jail.ts";
import { jailFilter } from "./_seccomp_policy.ts";
import { cgroupLimitsUnavailable } from "./_cgroup.ts";
import { ProcessIsolationError, ProcessSpawnError } from "./errors.ts";
import { userNamespaceCauses } from "./_userns_diagnosis.ts";

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

/** What the executor needs from `Process.start`. */
export interface Clone3Job {
  /** The program (for errors and the jail's view). */
  program: string;
  /** The requested isolation (not modified). */
  iso: ResolvedIsolation;
  /** Retry without layers the kernel refuses. */
  allowUnisolated: boolean;
  /** Receives `"layer: why"` for each layer that did not take effect. */
  notApplied: string[];
  /** Descriptors to close after the spawn (the executor adds its own). */
  temps: number[];
  /** A spare close-on-exec descriptor number the child may overwrite. */
  reserve: () => number;
  /** Appends the descriptor and cwd steps. */
  fdSetup: (ops: ChildOps) => void;
  /** execve arguments. */
  exec: { path: Uint8Array; argv: BigUint64Array; envp: Deno.PointerValue };
}

/**
 * Starts the child. Returns its pid and pidfd and the layers in effect.
 *
 * @throws {ProcessSpawnError} If a step or execve fails in the child.
 * @throws {ProcessIsolationError} If a required layer is unavailable and
 *   `allowUnisolated` is not set.
 */
export function startJailed(job: Clone3Job): {
  started: { pid: number; pidfd: number };
  report: ProcessIsolationReport;
} {
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
  if (layers.mountNamespace && !layers.pidNamespace) {
    notApplied.push(
      "mountNamespace: no /proc (a private one needs pidNamespace)",
    );
  }
  const anyLayer = Object.entries(layers).some(([k, v]) =>
    v && k !== "clearSignalHandlers"
  );
  if (anyLayer) {
    notApplied.push(`cgroupLimits: ${cgroupLimitsUnavailable()}`);
  }
  let view: ViewEntry[] | null | undefined;
  for (;;) {
    if (layers.mountNamespace && view === undefined) {
      view = planView(iso, job.program, threadIds().uid[1] === 0, job.temps);
    }
    const r = spawnOnce(job, layers, layers.mountNamespace ? view! : null, abi);
    if (r.kind === "ok") {
      return { started: r, report: layers };
    }
    if (r.kind === "child-failed") {
      reapNow(r.pidfd);
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

function spawnOnce(
  job: Clone3Job,
  layers: ProcessIsolationReport,
  view: ViewEntry[] | null,
  abi: number,
): Clone3Result {
  let flags = CLONE.CLONE_CLEAR_SIGHAND;
  for (const l of NAMESPACE_LAYERS) if (layers[l]) flags |= NAMESPACE_FLAG[l];
  const iso = { ...job.iso, layers };
  const ops = new ChildOps().resetSignals(ignoredSignals());
  if (iso.parentDeathSignal !== null && layers.parentDeathSignal) {
    // In its own PID namespace the child's parent is outside it:
    // getppid() is 0 there (pid_namespaces(7)).
    ops.parentDeathSignal(
      iso.parentDeathSignal,
      layers.pidNamespace ? 0 : Deno.pid,
    );
  }
  const ids = threadIds();
  const rootHost = ids.uid[1] === 0;
  const drop = rootHost && layers.userNamespace && layers.identity;
  jailOps(ops, iso, {
    uid: drop ? OVERFLOW_ID : ids.uid[1],
    gid: drop ? OVERFLOW_ID : ids.gid[1],
    rootHost,
    reserve: job.reserve,
    view,
  });
  if (layers.noNewPrivileges) ops.noNewPrivs();
  if (layers.landlock) {
    const ruleset = job.reserve();
    const scratch = job.reserve();
    ops.landlockCreate(handledRights(abi), ruleset);
    for (const [path, rights] of landlockRules(iso, view, abi)) {
      ops.landlockAllow(ruleset, path, rights, scratch);
    }
    ops.landlockRestrict(ruleset);
  }
  job.fdSetup(ops);
  // Last: nothing after it may need a call it refuses.
  if (layers.seccomp) ops.seccompFilter(jailFilter());
  const spawn = () =>
    clone3Spawn({
      flags,
      ops,
      path: job.exec.path,
      argv: job.exec.argv,
      envp: job.exec.envp,
    });
  // A root parent lends the child an unprivileged identity for the clone:
  // the user namespace is then owned by that id, which is the only one the
  // child can map (user_namespaces(7)). libcamera's isolated IPA keeps
  // kernel uid 0 on a root host.
  return drop ? withThreadIdentity(OVERFLOW_ID, spawn) : spawn();
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

/** Reaps a child known to have exited (or about to), then closes its pidfd. */
export function reapNow(pidfd: number): void {
  for (;;) {
    const w = waitidPidfd(pidfd, W.WEXITED | W.__WALL);
    if (w !== -E.EINTR) break;
  }
  closeFd(pidfd);
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
  reapNow(r.pidfd);
  return 0;
}
