/**
 * One empty network namespace for every jailed child of this process,
 * instead of a new one per child. Creating a network namespace runs every
 * network subsystem's per-namespace setup (sysctl tables, loopback, ...):
 * ~0.5-0.7 ms of each jailed spawn on this machine, plus its teardown on a
 * kernel worker. Made once, it costs a child two setns(2) calls.
 *
 * The namespace is created by a helper child in a user namespace of its
 * own (`U`, owned by the jailed children's id: 65534 on a root host, the
 * caller's otherwise); the helper opens both namespaces into this
 * process's descriptor table (CLONE_FILES) and exits, and the descriptors
 * keep them alive. A jailed spawn then runs in two stages (see
 * `ChildOps.cloneStage`): the first task joins `U` (its owner has every
 * capability there) and the network namespace, and clones the child
 * proper with its own user, PID, mount, IPC, UTS and cgroup namespaces;
 * the child's user namespace is nested in `U`, so it has no capability
 * over the shared network namespace (its loopback stays down, nothing can
 * be configured).
 *
 * What the children share is then only that empty namespace: the abstract
 * Unix socket names (one child can bind a name another wants) and the
 * socket table a `/proc/net` shows. Connecting to another child's abstract
 * socket is what would matter, and Landlock's scope
 * (LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, ABI 6, Linux 6.12) refuses it: each
 * child is its own Landlock domain. So the namespace is shared only where
 * that scope exists and the child has Landlock; elsewhere each child gets
 * its own, as before.
 *
 * @module
 */
import {
  ChildOps,
  clone3Spawn,
  reapExited,
} from "../../ffi/clone3_trampoline.ts";
import { CLONE, cString, O, open } from "../../ffi/spawn.ts";
import { close, readlink } from "../../ffi/unistd.ts";
import { withThreadIdentity } from "../../ffi/identity.ts";
import { mapSelf } from "./_jail.ts";

/** The Landlock ABI whose scope keeps abstract sockets per child. */
export const SCOPED_LANDLOCK_ABI = 6;

/** Descriptors of the shared user and network namespaces. */
export interface SharedNetwork {
  /** The user namespace `U` that owns the network namespace. */
  user: number;
  /** The network namespace. */
  net: number;
}

// By the id the children run as: null where it could not be made.
const made = new Map<number, SharedNetwork | null>();

/**
 * The shared namespaces for children running as uid `id` and gid `gid`
 * (made on first use), or null where they cannot be made or were given up
 * on.
 *
 * @param borrow Whether the calling thread must take `id` for the helper
 *   (a root parent: the user namespace must be owned by `id`; `gid` is
 *   then `id` too).
 */
export function sharedNetwork(
  id: number,
  gid: number,
  borrow: boolean,
): SharedNetwork | null {
  let s = made.get(id);
  if (s === undefined) {
    s = create(id, gid, borrow);
    made.set(id, s);
  }
  return s;
}

/**
 * Stops sharing for children running as `id` (a stage of a spawn failed):
 * later spawns make their own network namespace.
 */
export function abandonSharedNetwork(id: number): void {
  release(id);
  made.set(id, null);
}

/** Closes the shared namespaces for `id`; the next spawn makes new ones. */
export function forgetSharedNetwork(id: number): void {
  release(id);
  made.delete(id);
}

function release(id: number): void {
  const s = made.get(id);
  if (s) {
    close(s.user);
    close(s.net);
  }
}

/** Helpers started before giving up (each can be killed by a signal). */
const HELPER_ATTEMPTS = 3;

const PLACEHOLDER = "/";
const O_PATH = 0o10000000;

function create(
  id: number,
  gid: number,
  borrow: boolean,
): SharedNetwork | null {
  // Numbers the helper's opens are moved to, in this process's table.
  const user = open(PLACEHOLDER, O_PATH | O.O_CLOEXEC);
  const net = open(PLACEHOLDER, O_PATH | O.O_CLOEXEC);
  if (user < 0 || net < 0) {
    if (user >= 0) close(user);
    if (net >= 0) close(net);
    return null;
  }
  // The helper starts with every signal blocked (clone3Spawn masks this
  // thread's around a CLONE_FILES clone); one that ends it anyway (SIGKILL)
  // is retried below.
  const ops = mapSelf(new ChildOps(), id, gid)
    .openAt("/proc/self/ns/user", O.O_RDONLY, user)
    .openAt("/proc/self/ns/net", O.O_RDONLY, net)
    .exit(0);
  const spawn = () =>
    clone3Spawn({
      flags: CLONE.CLONE_NEWUSER | CLONE.CLONE_NEWNET |
        CLONE.CLONE_CLEAR_SIGHAND,
      ops,
      path: cString("/"),
      argv: new BigUint64Array(1),
      envp: null,
      shareFiles: true,
    });
  let ok = false;
  for (let i = 0; i < HELPER_ATTEMPTS && !ok; i++) {
    const r = borrow ? withThreadIdentity(id, spawn) : spawn();
    if (r.kind !== "clone-failed") reapExited(r.pidfd);
    // "ok" without both namespaces: a signal ended the helper before its
    // opens (it stores no error then). Anything else will not change.
    if (r.kind !== "ok") break;
    ok = isNamespace(user, "user") && isNamespace(net, "net");
  }
  if (!ok) {
    close(user);
    close(net);
    return null;
  }
  return { user, net };
}

function isNamespace(fd: number, type: string): boolean {
  const target = readlink(`/proc/self/fd/${fd}`);
  return typeof target === "string" && target.startsWith(`${type}:[`);
}
