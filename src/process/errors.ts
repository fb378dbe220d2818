/**
 * The errors of starting a child: {@linkcode ProcessSpawnError} (a system
 * call failed, in the parent or in the child before exec) and
 * {@linkcode ProcessIsolationError} (a requested isolation layer is not
 * available).
 *
 * @module
 */
import { SyscallError } from "../../ffi/errno.ts";
import type { IsolationLayer } from "./isolation.ts";

/**
 * Starting a child failed with an errno: the program is missing
 * (`ENOENT`) or not executable (`EACCES`), a descriptor could not be set
 * up, or clone3 failed. Nothing is left running.
 *
 * @example Catching a missing program
 * ```ts
 * import { Process, ProcessSpawnError } from "@isola/isola";
 *
 * try {
 *   Process.spawn("/nonexistent/program");
 * } catch (e) {
 *   if (e instanceof ProcessSpawnError) console.log(e.code, e.step); // ENOENT execve
 * }
 * ```
 */
export class ProcessSpawnError extends SyscallError {
  /** The program. */
  readonly path: string;
  /** The step that failed in the child, e.g. `"execve"`, `"chdir"`. */
  readonly step: string;

  /**
   * Builds the error.
   *
   * @param errnoValue The errno.
   * @param step The failing call.
   * @param path The program.
   */
  constructor(errnoValue: number, step: string, path: string) {
    super(errnoValue, step, `Cannot spawn process ${path}`);
    this.name = "ProcessSpawnError";
    this.path = path;
    this.step = step;
  }
}

/**
 * A requested isolation layer cannot take effect: the kernel refused a
 * namespace (sysctl `user.max_user_namespaces`,
 * `kernel.unprivileged_userns_clone`, AppArmor's
 * `kernel.apparmor_restrict_unprivileged_userns`, nesting limits), or the
 * platform has no clone3 path. Pass `allowUnisolated: true` to run anyway.
 *
 * @example
 * ```ts
 * import { ProcessIsolationError } from "@isola/isola";
 *
 * const e = new ProcessIsolationError(["userNamespace"], "refused (EPERM)");
 * console.log(e.layers); // [ "userNamespace" ]
 * ```
 */
export class ProcessIsolationError extends Error {
  /** The layers that are unavailable. */
  readonly layers: IsolationLayer[];
  /** The errno the kernel returned, if it refused. */
  readonly errno?: number;

  /**
   * Builds the error.
   *
   * @param layers The unavailable layers.
   * @param why Why.
   * @param options `cause`: the {@linkcode SyscallError} from clone3.
   */
  constructor(
    layers: IsolationLayer[],
    why: string,
    options?: ErrorOptions,
  ) {
    super(
      `Cannot spawn isolated process: ${layers.join(", ")} ${why}` +
        " (pass allowUnisolated: true to run without it)",
      options,
    );
    this.name = "ProcessIsolationError";
    this.layers = layers;
    if (options?.cause instanceof SyscallError) {
      this.errno = options.cause.errno;
    }
  }
}
