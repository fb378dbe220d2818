/**
 * The user namespace a root parent idmaps its jail's read-only binds
 * with: host uid/gid 0 shown as 65534, the jailed child's own id. Without
 * it a root host's child (uid 65534) could not read a mode-0700 directory
 * of root that the caller listed, such as a temporary module directory;
 * the binds are read-only, so owning the files there lets it change
 * nothing.
 *
 * Made per spawn by a clone3 child that exits at once: its namespace stays
 * readable through the zombie until it is reaped, long enough to write
 * the maps and open `/proc/<pid>/ns/user`.
 *
 * @module
 */
import { ChildOps, clone3Spawn } from "../../ffi/clone3_trampoline.ts";
import { E } from "../../ffi/errno.ts";
import { CLONE, cString, O, open, W, waitidPidfd } from "../../ffi/spawn.ts";
import { close, write } from "../../ffi/unistd.ts";
import { OVERFLOW_ID } from "../../ffi/mount.ts";

function writeFile(path: string, text: string): number {
  const fd = open(path, O.O_WRONLY | O.O_CLOEXEC);
  if (fd < 0) return fd;
  const bytes = new TextEncoder().encode(text);
  const n = write(fd, bytes);
  close(fd);
  return n < 0 ? n : 0;
}

/**
 * A user namespace descriptor mapping 0 to {@linkcode OVERFLOW_ID} (uid
 * and gid), for mount_setattr(2) `MOUNT_ATTR_IDMAP`, or `-errno`. The
 * caller closes it.
 */
export function rootAsNobodyUserns(): number {
  const r = clone3Spawn({
    flags: CLONE.CLONE_NEWUSER | CLONE.CLONE_CLEAR_SIGHAND,
    ops: new ChildOps().exit(0),
    path: cString("/"),
    argv: new BigUint64Array(1),
    envp: null,
  });
  if (r.kind !== "ok") {
    if (r.kind === "child-failed") close(r.pidfd);
    return -r.errno;
  }
  try {
    const map = `0 ${OVERFLOW_ID} 1\n`;
    for (const f of ["uid_map", "setgroups", "gid_map"]) {
      const e = writeFile(
        `/proc/${r.pid}/${f}`,
        f === "setgroups" ? "deny" : map,
      );
      if (e < 0) return e;
    }
    return open(`/proc/${r.pid}/ns/user`, O.O_RDONLY | O.O_CLOEXEC);
  } finally {
    while (waitidPidfd(r.pidfd, W.WEXITED | W.__WALL) === -E.EINTR);
    close(r.pidfd);
  }
}
