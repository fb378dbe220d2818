/**
 * Whether per-child cgroup v2 limits (`memory.max`, `pids.max`, placed
 * with `CLONE_INTO_CGROUP`) could be given here. isola does not create
 * cgroups yet; this says why a child has only its rlimits.
 *
 * @module
 */
import { O, open } from "../../ffi/spawn.ts";
import { close, read } from "../../ffi/unistd.ts";

/** Where a unified (v2) hierarchy lists its controllers: alone, or beside v1 (hybrid). */
const CONTROLLERS = [
  "/sys/fs/cgroup/cgroup.controllers",
  "/sys/fs/cgroup/unified/cgroup.controllers",
];
const READ_BYTES = 4096;
/** The controllers per-child limits need (`memory.max`, `pids.max`). */
const NEEDED = ["memory", "pids"];

let cached: string | null | undefined;

/**
 * The reason per-child cgroup limits are not applied (a sentence), read
 * once per realm.
 */
export function cgroupLimitsUnavailable(): string {
  if (cached !== undefined && cached !== null) return cached;
  let fd = -1;
  for (const path of CONTROLLERS) {
    fd = open(path, O.O_RDONLY | O.O_CLOEXEC);
    if (fd >= 0) break;
  }
  if (fd < 0) {
    cached = "no cgroup v2 hierarchy at /sys/fs/cgroup (rlimits only)";
    return cached;
  }
  const buf = new Uint8Array(READ_BYTES);
  const n = read(fd, buf);
  close(fd);
  const list = n > 0 ? new TextDecoder().decode(buf.subarray(0, n)).trim() : "";
  const have = list.split(/\s+/).filter((c) => c !== "");
  const missing = NEEDED.filter((c) => !have.includes(c));
  cached = missing.length > 0
    ? `the cgroup v2 hierarchy lacks the ${
      missing.join(" and ")
    } controller(s) (has: ${have.join(" ") || "none"}; rlimits only)`
    : "not implemented: per-child cgroups are not created yet (rlimits only)";
  return cached;
}
