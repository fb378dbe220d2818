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

/** Room for this many groups (1 KiB, off V8's heap) before growing. */
const GROUPS_INITIAL = 256;
let groupsBuf = new Uint32Array(GROUPS_INITIAL);

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
 * Runs `fn` with this thread's credentials set to effective uid `id`,
 * gid `id` and no supplementary group, then restores them, the groups and
 * the dumpable flag (a credential change clears it, prctl(2)). The real
 * and saved uid are kept (0): the thread can return, and no process of
 * uid `id` may signal it or a child cloned meanwhile (kill(2) lets a
 * sender whose uid matches the target's real or saved uid do so). Needs
 * euid 0. A child cloned inside `fn` starts with those credentials: its
 * user namespace is owned by the effective uid `id`, and it can map only
 * `id` (user_namespaces(7)); its setresuid in the jail drops the real 0.
 *
 * @throws {SyscallError} If a credential change fails (nothing changed
 *   then, or everything restored).
 */
export function withThreadIdentity<T>(id: number, fn: () => T): T {
  const before = threadIds();
  // getgroups(0, NULL) counts them; a buffer of NGROUPS_MAX (256 KiB) on
  // every call cost more than the rest of the identity change.
  const count = sysCall(SYS.getgroups, 0, 0);
  check(count, "getgroups");
  if (groupsBuf.length < count) groupsBuf = new Uint32Array(count);
  const groups = groupsBuf;
  const n = sysCall(SYS.getgroups, groups.length, address(groups));
  check(n, "getgroups");
  const dumpable = sysCall(SYS.prctl, PR_GET_DUMPABLE);
  check(sysCall(SYS.setgroups, 0, 0), "setgroups");
  try {
    check(sysCall(SYS.setresgid, id, id, id), "setresgid");
    try {
      check(sysCall(SYS.setresuid, -1, id, 0), "setresuid");
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
