// Validation of the caller's timeouts (milliseconds), shared by the socket
// and the pipe.

/** `t`, or `fallback` when `t` is undefined; a RangeError unless >= 0. */
export function checkTimeout(t: number | undefined, fallback: number): number {
  const v = t ?? fallback;
  if (typeof v !== "number" || Number.isNaN(v) || v < 0) {
    throw new RangeError(`Invalid timeout: ${v} (must be >= 0 ms)`);
  }
  return v;
}
