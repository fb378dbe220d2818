/**
 * The spawn plan: what `Process.start` resolves from validated options
 * (program, descriptors, environment, isolation) and hands to an executor
 * (`_clone3_executor.ts` or `_posix_spawn_executor.ts`), the way Rust's
 * `std::process::Command` and libuv's `uv_spawn` separate the request from
 * the platform call.
 *
 * @module
 */
import type { ProcessIsolationReport, ResolvedIsolation } from "./isolation.ts";

/** What the child must end up with. */
export interface SpawnPlan {
  /** The resolved program (for errors and the jail's view). */
  program: string;
  /** The requested isolation (executors do not modify it). */
  iso: ResolvedIsolation;
  /** Start with fewer layers rather than fail when some are unavailable. */
  allowUnisolated: boolean;
  /** Receives `"layer: why"` for each layer that did not take effect. */
  notApplied: string[];
  /** Descriptors to close after the spawn (executors add their own). */
  temps: number[];
  /**
   * The descriptors that become 0, 1 and 2; none sits on another
   * target number (0-2 or a kept one), so copying them in order is safe.
   */
  stdio: readonly number[];
  /** Descriptors kept open at the same number; every other one closes. */
  keep: ReadonlySet<number>;
  /** The caller's working directory (the child inherits it), or null if unknown. */
  inheritedCwd: string | null;
  /** execve arguments, and the directory to start in. */
  exec: {
    path: Uint8Array;
    argv: BigUint64Array;
    envp: Deno.PointerValue;
    cwd: Uint8Array | undefined;
  };
}

/** A started child: its pid, its pidfd, and the layers in effect. */
export interface SpawnStarted {
  /** The child's pid (in the caller's PID namespace). */
  pid: number;
  /** Its pidfd (close-on-exec), owned by the caller. */
  pidfd: number;
  /** Each layer, taken or not. */
  report: ProcessIsolationReport;
  /** Whether the child joined the network namespace jailed children share. */
  sharedNetworkNamespace: boolean;
}

/** The highest descriptor number the child must end up with (at least 2). */
export function maxTarget(plan: SpawnPlan): number {
  return Math.max(2, ...plan.keep);
}
