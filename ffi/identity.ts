/**
 * The calling thread's credentials, through raw system calls so that only
 * this thread changes (glibc's setresuid(3) would change every thread):
 * getresuid(2), getresgid(2), getgroups(2), and the temporary drop a root
 * parent makes around clone3 so that its jailed child is never kernel uid
 * 0 (see {@linkcode withThreadIdentity}).
 *
 * @module
 */
import { errno, SyscallError } from "./errno.ts";
import { sysCall } from "./spawn.ts";
import { PR_GET_DUMPABLE, PR_SET_DUMPABLE } from "./mount.ts";

// x86_64 numbers (the only architecture with the clone3 trampoline).
const SYS = Object.freeze({
  prctl: 157,
  getgroups: 115,
  setgroups: 116,
  setresuid: 117,
  getresuid: 118,
  setresgid: 119,
  getresgid: 120,
});

const NGROUPS_MAX = 65536;

function address(buf: ArrayBufferView): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** The thread's real, effective and saved user and group ids. */
export interface ThreadIds {
  /** `[real, effective, saved]` uid. */
  uid: [number, number, number];
  /** `[real, effective, saved]` gid. */
  gid: [number, number, number];
}

/** getresuid(2) and getresgid(2) of the calling thread. */
export function threadIds(): ThreadIds {
  const u = new Uint32Array(3);
  const g = new Uint32Array(3);
  sysCall(SYS.getresuid, address(u), address(u) + 4, address(u) + 8);
  sysCall(SYS.getresgid, address(g), address(g) + 4, address(g) + 8);
  return { uid: [u[0], u[1], u[2]], gid: [g[0], g[1], g[2]] };
}

function check(r: number, what: string): void {
  if (r < 0) {
    throw new SyscallError(errno(), what, "Cannot change thread identity");
  }
}

/**
 * Runs `fn` with this thread's credentials set to uid/gid `id` (real and
 * effective; the saved uid stays 0 so the thread can return) and no
 * supplementary group, then restores them, the groups and the dumpable
 * flag (a credential change clears it, prctl(2)). Needs euid 0. A child
 * cloned inside `fn` starts with those credentials: its user namespace is
 * owned by `id`, and it can map only `id` (user_namespaces(7)).
 *
 * @throws {SyscallError} If a credential change fails (nothing changed
 *   then, or everything restored).
 */
export function withThreadIdentity<T>(id: number, fn: () => T): T {
  const before = threadIds();
  const groups = new Uint32Array(NGROUPS_MAX);
  const n = sysCall(SYS.getgroups, NGROUPS_MAX, address(groups));
  check(n, "getgroups");
  const dumpable = sysCall(SYS.prctl, PR_GET_DUMPABLE);
  check(sysCall(SYS.setgroups, 0, 0), "setgroups");
  try {
    check(sysCall(SYS.setresgid, id, id, id), "setresgid");
    try {
      check(sysCall(SYS.setresuid, id, id, 0), "setresuid");
      try {
        return fn();
      } finally {
        const [r, e, s] = before.uid;
        check(sysCall(SYS.setresuid, r, e, s), "setresuid (restore)");
      }
    } finally {
      const [r, e, s] = before.gid;
      check(sysCall(SYS.setresgid, r, e, s), "setresgid (restore)");
    }
  } finally {
    check(sysCall(SYS.setgroups, n, address(groups)), "setgroups (restore)");
    if (dumpable >= 0) sysCall(SYS.prctl, PR_SET_DUMPABLE, dumpable);
  }
}
