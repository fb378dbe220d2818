// Isolation options the spawn benchmarks compare the full jail with.
import type { ProcessIsolation } from "../mod.ts";

/**
 * Namespaces, no_new_privs and a parent-death signal: the jail before the
 * minimal root, identity, seccomp and limits were added.
 */
export const NAMESPACES_ONLY: ProcessIsolation = Object.freeze({
  mountNamespace: false,
  identity: false,
  ipcNamespace: false,
  utsNamespace: false,
  cgroupNamespace: false,
  newSession: false,
  limits: false,
  seccomp: false,
  landlock: false,
});
