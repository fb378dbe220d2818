// The crash report of an IpaProxyThread's Worker: the Worker writes why it
// died into a SharedArrayBuffer before it shuts its socket end down, so an
// owner blocked in a sync call (which cannot run its event loop, where the
// Worker's `error` event would arrive) reads the reason as soon as it sees
// the end of the stream.
//
// Layout: Int32 [0] = length in bytes of the UTF-8 text that follows from
// byte 8, stored last (Atomics) so a reader that sees it sees the text.

/** Bytes kept of a crash report (as a process's stderr tail is capped). */
const REPORT_MAX = 16 * 1024;
const TEXT_OFFSET = 8;

/** A buffer for one crash report. */
export function crashReportBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(TEXT_OFFSET + REPORT_MAX);
}

/** Writes the report (once: a later crash does not overwrite the first). */
export function writeCrashReport(buf: SharedArrayBuffer, text: string): void {
  const len = new Int32Array(buf, 0, 1);
  if (Atomics.load(len, 0) !== 0) return;
  const { written } = new TextEncoder().encodeInto(
    text,
    new Uint8Array(buf, TEXT_OFFSET),
  );
  Atomics.store(len, 0, Math.max(written, 1));
}

/** The report, or null if the Worker has not crashed. */
export function readCrashReport(buf: SharedArrayBuffer): string | null {
  const n = Atomics.load(new Int32Array(buf, 0, 1), 0);
  if (n === 0) return null;
  // A copy: TextDecoder does not accept views of shared memory.
  return new TextDecoder().decode(
    new Uint8Array(buf, TEXT_OFFSET, n).slice(),
  );
}
