/**
 * The posix_spawn executor: where there is no clone3 trampoline (other
 * architectures, `spawnPath: "posix_spawn"`, or clone3 refused with
 * ENOSYS), glibc's posix_spawn(3) starts the child with the same
 * descriptors and cwd, and pidfd_open(2) gives its pidfd. It cannot create
 * namespaces, set a parent-death signal or no_new_privs: requested layers
 * are a {@linkcode ProcessIsolationError}, or with `allowUnisolated` each
 * is reported in `notApplied`.
 *
 * @module
 */
import { pidfdOpen, posixSpawn } from "../../ffi/spawn.ts";
import { ISOLATION_LAYERS, resolveIsolation } from "./isolation.ts";
import { ProcessIsolationError, ProcessSpawnError } from "./errors.ts";
import { maxTarget, type SpawnPlan, type SpawnStarted } from "./_spawn_plan.ts";

/**
 * Starts the child of `plan`. `reason` says why posix_spawn runs, for the
 * layers it cannot give. The layers in effect: only the signal reset.
 *
 * @throws {ProcessIsolationError} If layers were requested and
 *   `allowUnisolated` is not set.
 * @throws {ProcessSpawnError} If posix_spawn or pidfd_open fails.
 */
export function startPosixSpawn(
  job: SpawnPlan,
  reason: string,
): SpawnStarted {
  const layers = ISOLATION_LAYERS.filter((l) =>
    l !== "clearSignalHandlers" && job.iso.layers[l]
  );
  if (layers.length > 0) {
    const why = `not available with posix_spawn (${reason})`;
    if (!job.allowUnisolated) throw new ProcessIsolationError(layers, why);
    for (const l of layers) job.notApplied.push(`${l}: ${why}`);
  }
  const last = maxTarget(job);
  const close: number[] = [];
  for (let fd = 3; fd < last; fd++) {
    if (!job.keep.has(fd)) close.push(fd);
  }
  const r = posixSpawn({
    path: job.exec.path,
    argv: job.exec.argv,
    envp: job.exec.envp,
    dup2: [
      ...job.stdio.map((s, t) => [s, t] as const),
      ...[...job.keep].map((fd) => [fd, fd] as const),
    ],
    close,
    closeFrom: last + 1,
    cwd: job.exec.cwd,
    // glibc's pidfd_spawn (2.39+) leaves its pidfd open when exec fails
    // (one per failure, seen on Ubuntu 24.04); posix_spawn + pidfd_open is
    // race-free too, since nothing else reaps our children.
    wantPidfd: false,
  });
  if (typeof r === "number") {
    throw new ProcessSpawnError(-r, "posix_spawn", job.program);
  }
  const pidfd = pidfdOpen(r.pid);
  if (pidfd < 0) {
    throw new ProcessSpawnError(-pidfd, "pidfd_open", job.program);
  }
  return {
    pid: r.pid,
    pidfd,
    // POSIX_SPAWN_SETSIGDEF resets every signal; nothing else.
    report: { ...resolveIsolation(false).layers, clearSignalHandlers: true },
    sharedNetworkNamespace: false,
  };
}
