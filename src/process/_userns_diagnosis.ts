/**
 * Why the kernel refuses this process a user namespace, as far as it can
 * be read from `/proc`, with the remedy for each cause: the sysctls
 * `user.max_user_namespaces` and `kernel.unprivileged_userns_clone`
 * (Debian, older Ubuntu), AppArmor's
 * `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+), and a
 * seccomp filter on this process (a container's default profile).
 *
 * @module
 */
import { O, open } from "../../ffi/spawn.ts";
import { close, read } from "../../ffi/unistd.ts";

const READ_BYTES = 4096;

function readText(path: string): string | null {
  const fd = open(path, O.O_RDONLY | O.O_CLOEXEC);
  if (fd < 0) return null;
  const buf = new Uint8Array(READ_BYTES);
  const n = read(fd, buf);
  close(fd);
  return n < 0 ? null : new TextDecoder().decode(buf.subarray(0, n));
}

/** The causes found, each with its remedy; empty if none is visible. */
export function userNamespaceCauses(): string[] {
  const causes: string[] = [];
  if (readText("/proc/sys/user/max_user_namespaces")?.trim() === "0") {
    causes.push(
      "sysctl user.max_user_namespaces is 0 (raise it, e.g. sysctl -w user.max_user_namespaces=15000)",
    );
  }
  if (readText("/proc/sys/kernel/unprivileged_userns_clone")?.trim() === "0") {
    causes.push(
      "sysctl kernel.unprivileged_userns_clone is 0 (set it to 1)",
    );
  }
  if (
    readText("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
      ?.trim() === "1"
  ) {
    causes.push(
      "AppArmor restricts unprivileged user namespaces " +
        "(kernel.apparmor_restrict_unprivileged_userns=1: give the Deno executable " +
        "an AppArmor profile with `userns,`, or set the sysctl to 0)",
    );
  }
  const seccomp = readText("/proc/self/status")?.match(/^Seccomp:\s+(\d+)$/m);
  if (seccomp && seccomp[1] !== "0") {
    causes.push(
      "this process runs under a seccomp filter, e.g. a container's default " +
        "profile (run it with a profile that allows user namespaces)",
    );
  }
  return causes;
}
