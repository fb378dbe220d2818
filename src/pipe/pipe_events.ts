/**
 * The events of {@linkcode IpcPipeUnixSocket}: `recv` (a message the worker
 * sent on its own), `disconnect` (the worker is gone), `error` (a malformed
 * message was dropped).
 *
 * @module
 */
import type { IpcProtocolError } from "../common/errors.ts";
import type { ProcessExit } from "../process/process.ts";
import type { IpcMessage } from "./ipc_message.ts";

/**
 * A message the worker sent on its own (cookie 0).
 *
 * @example
 * ```ts
 * import { IpcMessage, IpcPipeMessageEvent } from "@isola/isola";
 *
 * const e = new IpcPipeMessageEvent(new IpcMessage({ cmd: 3 }));
 * console.log(e.type, e.message.cmd); // "recv" 3
 * ```
 */
export class IpcPipeMessageEvent extends Event {
  /** The message; dispose it to close descriptors not taken. */
  readonly message: IpcMessage;

  /**
   * Builds the event.
   *
   * @param message The message.
   */
  constructor(message: IpcMessage) {
    super("recv");
    this.message = message;
  }
}

/**
 * The worker went away; every call fails from now on.
 *
 * @example
 * ```ts
 * import { IpcPipeDisconnectEvent } from "@isola/isola";
 *
 * const e = new IpcPipeDisconnectEvent({ kind: "exited", code: 0 });
 * console.log(e.type, e.exit?.kind); // "disconnect" "exited"
 * ```
 */
export class IpcPipeDisconnectEvent extends Event {
  /** How the worker process ended, if known. */
  readonly exit: ProcessExit | null;

  /**
   * Builds the event.
   *
   * @param exit The exit report, or null.
   */
  constructor(exit: ProcessExit | null) {
    super("disconnect");
    this.exit = exit;
  }
}

/**
 * The worker sent a malformed message; it was dropped, delivery goes on.
 *
 * @example
 * ```ts
 * import { IpcPipeErrorEvent, IpcProtocolError } from "@isola/isola";
 *
 * const e = new IpcPipeErrorEvent(new IpcProtocolError("short-header", "3 bytes"));
 * console.log(e.type, e.error.reason); // "error" "short-header"
 * ```
 */
export class IpcPipeErrorEvent extends Event {
  /** What was wrong with it. */
  readonly error: IpcProtocolError;

  /**
   * Builds the event.
   *
   * @param error What was wrong.
   */
  constructor(error: IpcProtocolError) {
    super("error");
    this.error = error;
  }
}

/** The events of {@linkcode IpcPipeUnixSocket}. */
export interface IpcPipeEventMap {
  /** A malformed message was dropped. */
  error: IpcPipeErrorEvent;
  /** A message the worker sent on its own (an event), in arrival order. */
  recv: IpcPipeMessageEvent;
  /** The worker is gone. */
  disconnect: IpcPipeDisconnectEvent;
}
