// Byte handling for per-call paths that run once per frame, after an idle
// frame period, when every piece of runtime code they reach is cold.
// Measured on the 2-vCPU VM with 33 ms between single operations (each
// optimized, median of 60; docs/cadence.md): a typed array over a new
// ArrayBuffer (`slice`, `new Uint8Array(n)`) 12-16 µs, a `new DataView`
// 6-7 µs, a `subarray` 4-5 µs, `TypedArray.prototype.set` of 64 bytes
// 2.5-3 µs, a plain JS loop over the same 64 bytes under 0.5 µs. So a call
// path borrows views it made before instead of making new ones, and copies
// small arrays with a loop.

/** Sizes copied with a loop; larger ones with `set` (a memmove). */
const LOOP_COPY_MAX = 256;

/**
 * Copies `src[from, from + n)` (default: all of `src`) into `dst` at `at`.
 * Both must have room.
 */
export function copyBytes(
  dst: Uint8Array,
  at: number,
  src: Uint8Array,
  from = 0,
  n: number = src.length - from,
): void {
  if (n > LOOP_COPY_MAX) {
    dst.set(
      from === 0 && n === src.length ? src : src.subarray(from, from + n),
      at,
    );
    return;
  }
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i];
}

/** Lengths whose views are kept (longer ones are made per use). */
const CACHED_MAX = 4096;

/**
 * Views into one buffer, kept by length: a path that hands out the same
 * region call after call (a receive buffer's payload, an encoder's output)
 * makes no typed array after the first call. A view is borrowed: it shows
 * whatever the buffer holds now, so a caller reads it before the buffer is
 * written again and never hands it to code that may keep it.
 */
export class ViewCache {
  readonly buffer: Uint8Array;
  readonly #views: (Uint8Array | undefined)[] = [];

  /** @param buffer The buffer the views look into. */
  constructor(buffer: Uint8Array) {
    this.buffer = buffer;
  }

  /** `buffer[start, end)`, borrowed. */
  view(start: number, end: number): Uint8Array {
    const n = end - start;
    if (n > CACHED_MAX) return this.buffer.subarray(start, end);
    const v = this.#views[n];
    if (v !== undefined && v.byteOffset === this.buffer.byteOffset + start) {
      return v;
    }
    return this.#views[n] = this.buffer.subarray(start, end);
  }
}
