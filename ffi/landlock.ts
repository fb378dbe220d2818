/**
 * `<linux/landlock.h>`: landlock_create_ruleset(2), landlock_add_rule(2)
 * (landlock_restrict_self(2) runs in the child, see clone3_trampoline.ts).
 * Landlock lets an unprivileged process restrict its own file access, for
 * good, across exec (Linux 5.13+). Wrappers return `-errno` on failure.
 *
 * @module
 */
import { errno } from "./errno.ts";
import { close } from "./unistd.ts";
import { O, open, sysCall } from "./spawn.ts";

/** System call numbers (the same on x86_64 and aarch64). */
export const SYS_LANDLOCK = Object.freeze({
  create_ruleset: 444,
  add_rule: 445,
  restrict_self: 446,
});

/** Access rights on files and directories (LANDLOCK_ACCESS_FS_*). */
export const LANDLOCK_FS = Object.freeze({
  EXECUTE: 1 << 0,
  WRITE_FILE: 1 << 1,
  READ_FILE: 1 << 2,
  READ_DIR: 1 << 3,
  REMOVE_DIR: 1 << 4,
  REMOVE_FILE: 1 << 5,
  MAKE_CHAR: 1 << 6,
  MAKE_DIR: 1 << 7,
  MAKE_REG: 1 << 8,
  MAKE_SOCK: 1 << 9,
  MAKE_FIFO: 1 << 10,
  MAKE_BLOCK: 1 << 11,
  MAKE_SYM: 1 << 12,
  REFER: 1 << 13, // ABI 2
  TRUNCATE: 1 << 14, // ABI 3
  IOCTL_DEV: 1 << 15, // ABI 5
});

const LANDLOCK_CREATE_RULESET_VERSION = 1;
const LANDLOCK_RULE_PATH_BENEATH = 1;
const O_PATH = 0o10000000;

/** The rights that apply to a file (not a directory). */
const FILE_RIGHTS = LANDLOCK_FS.EXECUTE | LANDLOCK_FS.WRITE_FILE |
  LANDLOCK_FS.READ_FILE | LANDLOCK_FS.TRUNCATE | LANDLOCK_FS.IOCTL_DEV;

/** The kernel's Landlock ABI version, or `-errno` (ENOSYS, EOPNOTSUPP). */
export function landlockAbi(): number {
  const r = sysCall(
    SYS_LANDLOCK.create_ruleset,
    0,
    0,
    LANDLOCK_CREATE_RULESET_VERSION,
  );
  return r < 0 ? -errno() : r;
}

/** Every file-system right the given ABI version knows. */
export function handledRights(abi: number): number {
  let r = (1 << 13) - 1;
  if (abi >= 2) r |= LANDLOCK_FS.REFER;
  if (abi >= 3) r |= LANDLOCK_FS.TRUNCATE;
  if (abi >= 5) r |= LANDLOCK_FS.IOCTL_DEV;
  return r;
}

function address(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * Makes a ruleset that handles every right of `abi` and allows, beneath
 * each `[path, rights]`, those rights (masked to file rights for a file).
 * Paths that do not exist are skipped. Returns the ruleset descriptor
 * (close-on-exec) or `-errno` with the failing path in `failed`.
 */
export function landlockRuleset(
  abi: number,
  rules: readonly (readonly [string, number])[],
): { fd: number } | { errno: number; path: string } {
  const handled = handledRights(abi);
  // struct landlock_ruleset_attr { __u64 handled_access_fs; } (ABI 1 size)
  const attr = new Uint8Array(new ArrayBuffer(8));
  new DataView(attr.buffer).setBigUint64(0, BigInt(handled), true);
  const fd = sysCall(SYS_LANDLOCK.create_ruleset, address(attr), 8, 0);
  if (fd < 0) return { errno: errno(), path: "" };
  // struct landlock_path_beneath_attr { __u64 allowed_access; __s32
  // parent_fd; } __attribute__((packed)): 12 bytes.
  const rule = new Uint8Array(new ArrayBuffer(12));
  const view = new DataView(rule.buffer);
  for (const [path, rights] of rules) {
    const pfd = open(path, O_PATH | O.O_CLOEXEC);
    if (pfd < 0) continue; // absent: nothing to allow
    const isDir = open(path, O_PATH | O.O_CLOEXEC | 0o200000); // O_DIRECTORY
    const dir = isDir >= 0;
    if (dir) close(isDir);
    view.setBigUint64(
      0,
      BigInt((dir ? rights : rights & FILE_RIGHTS) & handled),
      true,
    );
    view.setInt32(8, pfd, true);
    const r = sysCall(
      SYS_LANDLOCK.add_rule,
      fd,
      LANDLOCK_RULE_PATH_BENEATH,
      address(rule),
      0,
    );
    const e = r < 0 ? errno() : 0;
    close(pfd);
    if (r < 0) {
      close(fd);
      return { errno: e, path };
    }
  }
  return { fd };
}
