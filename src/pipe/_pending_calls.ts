// The calls of a pipe that wait for their reply, by cookie: each settles
// once, by its reply, its deadline, its AbortSignal or the pipe's end, and
// whichever comes first removes it (and its timer and abort listener), so a
// later reply finds nothing and is counted as late.
import type { IpcMessage } from "./ipc_message.ts";

/** One call waiting for its reply. */
export interface PendingCall {
  /** Its command (for error messages). */
  readonly cmd: number;
  /** Settles the call with its reply. */
  resolve(msg: IpcMessage): void;
  /** Fails the call. */
  reject(e: Error): void;
}

interface Entry extends PendingCall {
  timer?: ReturnType<typeof setTimeout>;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** What ends a pending call besides its reply. */
export interface PendingLimits {
  /** Milliseconds until `onTimeout` fails it; Infinity for none. */
  timeout: number;
  /** Fails it with its reason when aborted. */
  signal?: AbortSignal;
  /** The error of a call whose deadline passed. */
  onTimeout(): Error;
}

export class PendingCalls {
  readonly #calls = new Map<number, Entry>();

  /** Calls waiting. */
  get size(): number {
    return this.#calls.size;
  }

  /** Whether `cookie` still waits. */
  has(cookie: number): boolean {
    return this.#calls.has(cookie);
  }

  /**
   * Registers the call `cookie`; the returned Promise settles with its
   * reply, or fails at its deadline, at its signal, or when failed here.
   */
  add(cookie: number, cmd: number, limits: PendingLimits): Promise<IpcMessage> {
    const p = Promise.withResolvers<IpcMessage>();
    const entry: Entry = { cmd, resolve: p.resolve, reject: p.reject };
    this.#calls.set(cookie, entry);
    if (limits.timeout !== Infinity) {
      entry.timer = setTimeout(
        () => this.take(cookie)?.reject(limits.onTimeout()),
        limits.timeout,
      );
    }
    const signal = limits.signal;
    if (signal) {
      entry.signal = signal;
      entry.onAbort = () => this.take(cookie)?.reject(signal.reason);
      signal.addEventListener("abort", entry.onAbort);
    }
    return p.promise;
  }

  /**
   * Removes call `cookie` (stopping its timer and abort listener) and
   * returns it to be settled; undefined if it already settled.
   */
  take(cookie: number): PendingCall | undefined {
    const e = this.#calls.get(cookie);
    if (e === undefined) return undefined;
    this.#calls.delete(cookie);
    clearTimeout(e.timer);
    if (e.onAbort) e.signal?.removeEventListener("abort", e.onAbort);
    return e;
  }

  /** Fails every waiting call with the error `why` builds for it. */
  failAll(why: (call: PendingCall) => Error): void {
    for (const cookie of [...this.#calls.keys()]) {
      const call = this.take(cookie)!;
      call.reject(why(call));
    }
  }
}
