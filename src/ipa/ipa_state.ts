/**
 * Where an IPA proxy stands, and {@linkcode IpaStateError}, the error of a
 * call its state does not allow.
 *
 * @module
 */

/**
 * Where an IPA stands:
 * - `stopped`: created, or its lifecycle's `stop` method returned; sync
 *   methods may be called, async ones are refused, events are dropped.
 * - `running`: its lifecycle's `start` method returned (or the interface is
 *   `"always-running"`); everything may be called, events are delivered.
 * - `crashed`: its thread or process died; calls fail with
 *   `IpcPeerGoneError`.
 * - `closed`: `close()` was called; calls fail with
 *   {@linkcode IpaStateError}.
 */
export type IpaProxyState = "stopped" | "running" | "crashed" | "closed";

/**
 * A call the IPA's state does not allow: an async method while the IPA is
 * not running, or any method after `close()`.
 *
 * @example
 * ```ts
 * import { IpaStateError } from "@isola/isola";
 *
 * const e = new IpaStateError("Cannot call camera.queueRequest", "stopped");
 * console.log(e.state, e.message);
 * // stopped Cannot call camera.queueRequest: the IPA is stopped, not running
 * ```
 */
export class IpaStateError extends Error {
  /** The state the IPA was in. */
  readonly state: IpaProxyState;

  /**
   * Builds the error.
   *
   * @param action What could not be done, e.g. `Cannot call camera.start`.
   * @param state The state the IPA was in.
   */
  constructor(action: string, state: IpaProxyState) {
    super(
      `${action}: the IPA is ${state}${
        state === "stopped" ? ", not running" : ""
      }`,
    );
    this.name = "IpaStateError";
    this.state = state;
  }
}
