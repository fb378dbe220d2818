/**
 * The errors of {@linkcode IpcPipeUnixSocket}'s calls: the worker is gone
 * ({@linkcode IpcPeerGoneError}, with its exit report) or its handler threw
 * ({@linkcode IpcRemoteError}, with the code and text that came back).
 *
 * @module
 */
import { IpcClosedError } from "../common/errors.ts";
import type { ProcessExit } from "../process/process.ts";

/**
 * The peer of a pipe is gone: it closed its socket or its process ended.
 *
 * @example
 * ```ts
 * import { IpcClosedError, IpcPeerGoneError } from "@isola/isola";
 *
 * const e = new IpcPeerGoneError("Cannot call 1", { kind: "exited", code: 3 });
 * console.log(e instanceof IpcClosedError, e.exit?.kind); // true "exited"
 * console.log(e.message); // "Cannot call 1: the worker is gone (exited with code 3)"
 * ```
 */
export class IpcPeerGoneError extends IpcClosedError {
  /** How the worker process ended, if known when the error was made. */
  readonly exit: ProcessExit | null;

  /**
   * Builds the error.
   *
   * @param action What could not be done.
   * @param exit The worker's exit report, or null.
   */
  constructor(action: string, exit: ProcessExit | null) {
    super(`${action}: the worker is gone (${describeExit(exit)})`);
    this.name = "IpcPeerGoneError";
    this.exit = exit;
  }
}

/**
 * The worker's handler threw; its code and message travelled back (an
 * error reply, see docs/wire.md). Classify by {@linkcode IpcRemoteError.code},
 * never by the wording of the message.
 *
 * @example
 * ```ts
 * import { IpcRemoteError } from "@isola/isola";
 *
 * const e = new IpcRemoteError(4, 17, "no such buffer");
 * console.log(e.cmd, e.code, e.remoteMessage); // 4 17 "no such buffer"
 * console.log(e.message); // "Call 4 failed in the worker: no such buffer (code 17)"
 * ```
 */
export class IpcRemoteError extends Error {
  /** The command of the failed call. */
  readonly cmd: number;
  /** The handler's error code (an `IpcCallError`'s), 0 for any other throw. */
  readonly code: number;
  /** The handler's error message, as sent. */
  readonly remoteMessage: string;

  /**
   * Builds the error.
   *
   * @param cmd The command of the failed call.
   * @param code The error code from the worker (0: none given).
   * @param remoteMessage The worker's error message.
   */
  constructor(cmd: number, code: number, remoteMessage: string) {
    super(
      `Call ${cmd} failed in the worker: ${remoteMessage}` +
        (code === 0 ? "" : ` (code ${code})`),
    );
    this.name = "IpcRemoteError";
    this.cmd = cmd;
    this.code = code;
    this.remoteMessage = remoteMessage;
  }
}

/** A `"\x1b[…m"` colour sequence, as Deno prints them on a terminal. */
const ANSI_COLOUR = new RegExp(String.fromCharCode(0x1b) + "\\[[0-9;]*m", "g");
/** Lines of stderr quoted when no line names the error. */
const STDERR_TAIL_LINES = 3;

/**
 * A one-line description of an exit report: how the process ended, and the
 * stderr line that names the error (Deno prints `error: …` first), else the
 * last lines.
 *
 * @param exit The report, or null when not known.
 * @returns The description.
 *
 * @example
 * ```ts
 * import { describeExit } from "@isola/isola";
 *
 * console.log(describeExit({
 *   kind: "signaled",
 *   signal: "SIGKILL",
 *   signalNumber: 9,
 *   coreDumped: false,
 *   stderr: new TextEncoder().encode("error: out of memory\n"),
 * })); // "killed by SIGKILL; stderr: error: out of memory"
 * ```
 */
export function describeExit(exit: ProcessExit | null): string {
  if (exit === null) return "exit status not known yet";
  const what = exit.kind === "exited"
    ? `exited with code ${exit.code}`
    : `killed by ${exit.signal}${exit.coreDumped ? " (core dumped)" : ""}`;
  if (!exit.stderr || exit.stderr.length === 0) return what;
  const lines = new TextDecoder().decode(exit.stderr).replace(ANSI_COLOUR, "")
    .trimEnd().split("\n");
  const error = lines.find((l) => /^error/i.test(l));
  return `${what}; stderr: ${
    error ?? lines.slice(-STDERR_TAIL_LINES).join(" | ")
  }`;
}
