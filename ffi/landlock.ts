/**
 * `<linux/landlock.h>`: the ABI probe and the access rights. The ruleset is
 * built and enforced by the child itself from its own view of the files
 * (landlock_create_ruleset(2), landlock_add_rule(2),
 * landlock_restrict_self(2) as ops of clone3_trampoline.ts).
 * Landlock lets an unprivileged process restrict its own file access, for
 * good, across exec (Linux 5.13+). Wrappers return `-errno` on failure.
 *
 * @module
 */
import { errno } from "./errno.ts";
import { sysCall } from "./spawn.ts";

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

/** What a ruleset can scope to its own domain (LANDLOCK_SCOPE_*, ABI 6). */
export const LANDLOCK_SCOPE = Object.freeze({
  /** Connecting to an abstract Unix socket made outside the domain. */
  ABSTRACT_UNIX_SOCKET: 1 << 0,
  /** Signalling a process outside the domain. */
  SIGNAL: 1 << 1,
});

const LANDLOCK_CREATE_RULESET_VERSION = 1;

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
