/**
 * `<signal.h>`: signal numbers and names. The classic signals 1-31 have
 * the same numbers on x86_64 and aarch64 (both use the asm-generic
 * numbering for them; see signal(7)). Real-time signals have no fixed
 * name here and are shown as `SIG<n>`.
 *
 * @module
 */

/** Signal numbers by name (signal(7), x86_64 and aarch64). */
export const SIGNALS: Readonly<Record<SignalName, number>> = Object.freeze({
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
});

/** A signal name known to isola, e.g. `"SIGTERM"` (see signal(7)). */
export type SignalName =
  | "SIGHUP"
  | "SIGINT"
  | "SIGQUIT"
  | "SIGILL"
  | "SIGTRAP"
  | "SIGABRT"
  | "SIGBUS"
  | "SIGFPE"
  | "SIGKILL"
  | "SIGUSR1"
  | "SIGSEGV"
  | "SIGUSR2"
  | "SIGPIPE"
  | "SIGALRM"
  | "SIGTERM"
  | "SIGSTKFLT"
  | "SIGCHLD"
  | "SIGCONT"
  | "SIGSTOP"
  | "SIGTSTP"
  | "SIGTTIN"
  | "SIGTTOU"
  | "SIGURG"
  | "SIGXCPU"
  | "SIGXFSZ"
  | "SIGVTALRM"
  | "SIGPROF"
  | "SIGWINCH"
  | "SIGIO"
  | "SIGPWR"
  | "SIGSYS";

/** The highest signal number (`SIGRTMAX`, `_NSIG - 1`) on Linux. */
export const SIGRTMAX = 64;

const NAMES: Readonly<Record<number, SignalName>> = Object.freeze(
  Object.fromEntries(
    Object.entries(SIGNALS).map(([name, n]) => [n, name as SignalName]),
  ),
);

/** The name of signal `n` (`11` → `"SIGSEGV"`; unnamed → `"SIG40"`). */
export function signalName(n: number): string {
  return NAMES[n] ?? `SIG${n}`;
}

/**
 * The number of a signal given by name or number.
 *
 * @throws {TypeError} If the name is unknown or the number out of range.
 */
export function signalNumber(signal: string | number): number {
  if (typeof signal === "number") {
    if (Number.isInteger(signal) && signal >= 1 && signal <= SIGRTMAX) {
      return signal;
    }
    throw new TypeError(`Invalid signal: ${signal} (must be 1-${SIGRTMAX})`);
  }
  if (typeof signal !== "string" || !Object.hasOwn(SIGNALS, signal)) {
    throw new TypeError(`Invalid signal: ${String(signal)}`);
  }
  return SIGNALS[signal as SignalName];
}
