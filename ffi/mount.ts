/**
 * `<sys/mount.h>`, `<linux/mount.h>`, `<sys/resource.h>`,
 * `<linux/keyctl.h>` and `<sys/stat.h>` constants the jail's child steps
 * use: mount(2) and mount_setattr(2) flags, the `struct mount_attr`
 * layout, umount2(2) flags, rlimit resources, keyctl(2) operations and
 * file-type bits for mknod(2). Values from the kernel UAPI headers (the
 * same on x86_64 and aarch64).
 *
 * @module
 */
import { errno } from "./errno.ts";
import { sysCall } from "./spawn.ts";
import { close } from "./unistd.ts";

/** mount(2) flags (`<linux/mount.h>`). */
export const MS = Object.freeze({
  MS_RDONLY: 0x1,
  MS_NOSUID: 0x2,
  MS_NODEV: 0x4,
  MS_NOEXEC: 0x8,
  MS_REMOUNT: 0x20,
  MS_BIND: 0x1000,
  MS_REC: 0x4000,
  MS_PRIVATE: 0x40000,
});

/** mount_setattr(2) attributes (`MOUNT_ATTR_*`, Linux 5.12). */
export const MOUNT_ATTR = Object.freeze({
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  IDMAP: 0x100000,
});

/** `struct mount_attr` (mount_setattr(2)): four `__u64`. */
export const mount_attr = Object.freeze({
  attr_set: 0,
  attr_clr: 8,
  propagation: 16,
  userns_fd: 24,
  SIZEOF: 32,
});

/** mount_setattr(2) flag: apply to the whole subtree. */
export const AT_RECURSIVE = 0x8000;
/** `dirfd` meaning the working directory. */
export const AT_FDCWD = -100;
/** umount2(2) flag: detach now, clean up when no longer busy. */
export const MNT_DETACH = 2;

/** `st_mode` file type of a regular file, for mknod(2). */
export const S_IFREG = 0o100000;

/** setrlimit(2) resources (`<asm-generic/resource.h>`). */
export const RLIMIT = Object.freeze({
  RLIMIT_FSIZE: 1,
  RLIMIT_CORE: 4,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
});

/** keyctl(2) operation: join (here: create) a new session keyring. */
export const KEYCTL_JOIN_SESSION_KEYRING = 1;

/** prctl(2) option that makes the process dumpable again (its /proc files owned by it). */
export const PR_SET_DUMPABLE = 4;
/** prctl(2) option that reads the dumpable flag. */
export const PR_GET_DUMPABLE = 3;

/** The unprivileged id a root host's jailed child runs as (`nobody`). */
export const OVERFLOW_ID = 65534;

// open_tree(2) / mount_setattr(2): x86_64 / aarch64 share these numbers.
const SYS_OPEN_TREE = 428;
const SYS_MOUNT_SETATTR = 442;
const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const AT_EMPTY_PATH = 0x1000;

/**
 * A detached copy of the mount tree at `path` (open_tree(2) with
 * `OPEN_TREE_CLONE | AT_RECURSIVE`, Linux 5.2), with `attrSet` applied to
 * every mount in it (mount_setattr(2)). Needs `CAP_SYS_ADMIN`. Another
 * process can attach it with move_mount(2) even where it could not look
 * the path up. With `idmapUserns` (a user namespace descriptor) the tree
 * is also idmapped (Linux 5.12): file owners are shown through that
 * namespace's map. Returns the descriptor (close-on-exec) or `-errno`.
 */
export function detachedTree(
  path: string,
  attrSet: number,
  idmapUserns = -1,
): number {
  const cpath = new TextEncoder().encode(path + "\0");
  const fd = sysCall(
    SYS_OPEN_TREE,
    AT_FDCWD,
    addr(cpath),
    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
  );
  if (fd < 0) return -errno();
  const attr = new BigUint64Array(mount_attr.SIZEOF / 8);
  attr[mount_attr.attr_set / 8] = BigInt(
    attrSet | (idmapUserns >= 0 ? MOUNT_ATTR.IDMAP : 0),
  );
  if (idmapUserns >= 0) attr[mount_attr.userns_fd / 8] = BigInt(idmapUserns);
  const empty = new Uint8Array(1);
  const attrBytes = new Uint8Array(attr.buffer);
  const r = sysCall(
    SYS_MOUNT_SETATTR,
    fd,
    addr(empty),
    AT_EMPTY_PATH | AT_RECURSIVE,
    addr(attrBytes),
    mount_attr.SIZEOF,
  );
  keep(cpath, empty, attrBytes);
  if (r < 0) {
    const e = errno();
    close(fd);
    return -e;
  }
  return fd;
}

// statx(2): x86_64 / aarch64 numbers, and the fields read.
const SYS_STATX = Deno.build.arch === "x86_64" ? 332 : 291;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_TYPE = 0x1;
const STATX_MODE = 0x2;
const STATX_SIZE = 256;
const STX_MODE = 28; // __u16 stx_mode
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** What a path is, without following a final symlink. */
export type FileKind = "dir" | "file" | "symlink";

/**
 * The kind of `path` (statx(2) with `AT_SYMLINK_NOFOLLOW`), or `-errno`
 * (`-ENOENT` when it does not exist). Sockets, devices and FIFOs count as
 * `"file"`: a bind mount takes them the same way.
 */
export function fileKind(path: string): FileKind | number {
  const m = fileMode(path);
  if (m < 0) return m;
  const type = m & S_IFMT;
  return type === S_IFDIR ? "dir" : type === S_IFLNK ? "symlink" : "file";
}

/** `st_mode` of `path` (type and permission bits, not following a final symlink), or `-errno`. */
export function fileMode(path: string): number {
  const cpath = new TextEncoder().encode(path + "\0");
  const buf = new Uint8Array(STATX_SIZE);
  const r = sysCall(
    SYS_STATX,
    AT_FDCWD,
    addr(cpath),
    AT_SYMLINK_NOFOLLOW,
    STATX_TYPE | STATX_MODE,
    addr(buf),
  );
  if (r < 0) return -errno();
  keep(cpath);
  return new DataView(buf.buffer).getUint16(STX_MODE, true);
}

/** `st_mode` bits: a directory, and the permission bits of "others". */
export const S_MODE = Object.freeze({
  S_IFDIR,
  S_IROTH: 0o4,
  S_IXOTH: 0o1,
});

const sink: { values: unknown } = { values: undefined };
/** Keeps buffers a system call read referenced until after it. */
function keep(...values: unknown[]): void {
  sink.values = values;
  sink.values = undefined;
}

function addr(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}
