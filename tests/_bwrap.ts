// bubblewrap's strict profile, as this project compares against it (the
// escape test's table and the spawn bench): every namespace, no
// capabilities, its own session, read-only /usr (and /bin, /sbin, /lib*
// as the host lays them out), a private /proc, /dev and /tmp.
import { fileKind } from "../ffi/mount.ts";

/** Where bubblewrap is installed by Debian's `bubblewrap` package. */
export const BWRAP = "/usr/bin/bwrap";

/** The arguments of `bwrap` strict before the command it runs. */
export function bwrapStrictArgs(): string[] {
  const sys = ["/bin", "/sbin", "/lib", "/lib64"].flatMap((p) => {
    const k = fileKind(p);
    if (k === "symlink") return ["--symlink", `usr${p}`, p];
    return k === "dir" ? ["--ro-bind", p, p] : [];
  });
  return [
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/usr",
    "/usr",
    ...sys,
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
  ];
}
