// The life cycle of a pipe and how its end is reported:
//
//   open ──(peer hung up, or its process ended)──► gone ──► closing ──► closed
//     └────────────────────(close())──────────────────────────┘
//
// Once gone, every call fails with IpcPeerGoneError carrying the worker's
// exit report. The report follows the hang-up by about a millisecond (the
// kernel closes the socket before the process is reaped), so errors wait
// for it briefly: a blocking caller with waitSync(), a Promise after the
// report was looked for.
import { IpcClosedError } from "../common/errors.ts";
import { settleWithin } from "../common/_timeout.ts";
import type { Process, ProcessExit } from "../process/process.ts";
import { IpcPeerGoneError } from "./pipe_errors.ts";

/** How long a failure waits for the exit report after the hang-up, ms. */
export const EXIT_REPORT_WAIT = 50;
/** How long a blocking caller waits for the exit report, ms. */
export const EXIT_REPORT_WAIT_SYNC = 100;

export type PipeState = "open" | "gone" | "closing" | "closed";

export class PipeLife {
  readonly #process: Process | null;
  #state: PipeState = "open";
  #exit: ProcessExit | null = null;
  #exitLooked?: Promise<void>; // settles once the exit report was looked for

  /** @param process The worker's process, or null for a bare socket. */
  constructor(process: Process | null) {
    this.#process = process;
  }

  get state(): PipeState {
    return this.#state;
  }

  /** The exit report, if known now. */
  get exit(): ProcessExit | null {
    return this.#exit ?? this.#process?.exitStatus ?? null;
  }

  /** Throws unless calls can be made (without waiting for a report). */
  check(action: string): void {
    if (this.#state === "gone") throw new IpcPeerGoneError(action, this.exit);
    if (this.#state !== "open") {
      throw new IpcClosedError(`${action}: the pipe is closed`);
    }
  }

  /**
   * Throws unless calls can be made; when the peer is gone, the error
   * carries the exit report, reaped synchronously if need be (for callers
   * that block anyway: sendSync, sendAsync).
   */
  checkSync(action: string): void {
    if (this.#state === "gone") throw this.goneSync(action);
    this.check(action);
  }

  /** The error of a blocking caller that met the peer's end. */
  goneSync(action: string): IpcPeerGoneError {
    return new IpcPeerGoneError(
      action,
      this.exit ?? this.#process?.waitSync(EXIT_REPORT_WAIT_SYNC) ?? null,
    );
  }

  /**
   * When the peer is gone but its report not yet looked for: a Promise
   * that fails with the report once it was (as pending calls do); else
   * null.
   */
  goneLater(action: string): Promise<never> | null {
    if (this.#state !== "gone" || this.exit !== null) return null;
    return this.#exitLooked!.then(() => {
      throw new IpcPeerGoneError(action, this.exit);
    });
  }

  /**
   * Moves an open pipe to gone; `fail` runs once the exit report was
   * looked for (briefly: it usually follows the hang-up within 1 ms).
   */
  markGone(fail: (exit: ProcessExit | null) => void): void {
    if (this.#state !== "open") return;
    this.#state = "gone";
    this.#exitLooked = settleWithin(
      this.#process?.exited ?? Promise.resolve(null),
      EXIT_REPORT_WAIT,
    ).then((exit) => {
      // If the event loop was blocked past the wait, the child may well
      // have ended meanwhile: look once more (non-blocking).
      this.#exit = exit ?? this.#process?.waitSync(0) ?? null;
      fail(this.#exit);
    });
  }

  /** close() has begun: calls fail with IpcClosedError from now on. */
  closing(): void {
    this.#state = "closing";
  }

  /**
   * Ends the worker: lets it exit on its own for `grace` ms (its loop ends
   * at the hang-up), then SIGTERM, then SIGKILL; reaps it. Then closed.
   */
  async end(grace: number): Promise<void> {
    const process = this.#process;
    if (process !== null) {
      const exited = await settleWithin(process.exited, grace);
      if (exited === null) await process.terminate({ grace });
    }
    this.#state = "closed";
  }
}
