// Timeouts in milliseconds: validating the caller's, and waiting for a
// Promise no longer than one (shared by the socket, the pipe and the IPA).

/** `t`, or `fallback` when `t` is undefined; a RangeError unless >= 0. */
export function checkTimeout(t: number | undefined, fallback: number): number {
  const v = t ?? fallback;
  if (typeof v !== "number" || Number.isNaN(v) || v < 0) {
    throw new RangeError(`Invalid timeout: ${v} (must be >= 0 ms)`);
  }
  return v;
}

/**
 * `p`'s value, or null if it has not settled within `ms` (then the timer
 * is cleared, so nothing is left running). Infinity waits for `p`.
 */
export async function settleWithin<T>(
  p: Promise<T>,
  ms: number,
): Promise<T | null> {
  if (ms === Infinity) return await p;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<null>((resolve) => timer = setTimeout(resolve, ms, null)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
