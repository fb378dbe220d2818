// Keeps a sync call path warm for calls that come at a steady cadence.
//
// A camera makes one sync call per frame, 33 ms apart. After such an idle
// gap every page the call touches costs a page walk and every FFI crossing
// runs cold on both sides: the call took 3-5x its back-to-back time here
// (docs/cadence.md). Measured on this 2-vCPU VM (bench/cadence_ab.ts,
// interleaved, 4 rounds): one extra round trip 2 ms before each frame took
// the next call of the isolated IPA from 242 to 73 µs p50, and a
// sendSync() -> serveBlocking() call from 324 to 40 µs. The warm-up trip
// is off the frame's path: it runs from a timer, while the caller would
// otherwise sleep.
//
// So a warmer learns the gap between calls (from their start times) and,
// while calls keep that cadence, makes one warm call WARM_LEAD_MS before
// the next is due. It stops when the calls stop (no timer is left armed
// past three missed periods), backs off when a warm call times out and
// ends when one fails otherwise (the peer is gone or closed). Its timer is
// unref'd: it never keeps a process alive.
import { IpcTimeoutError } from "../common/errors.ts";

/**
 * How long before the next call is due the warm call is made, ms: Deno's
 * timers fire up to 1-2 ms late here, which the lead must absorb.
 */
export const WARM_LEAD_MS = 3;
/**
 * Shortest gap between calls that is warmed, ms: below it the path stays
 * warm by itself (and a timer would fire too often to pay).
 */
export const WARM_MIN_PERIOD_MS = 8;
/** Longest gap that is warmed, ms (1 call a second). */
export const WARM_MAX_PERIOD_MS = 1000;
/** A gap within this fraction of the learnt period keeps the cadence. */
const PERIOD_TOLERANCE = 0.25;
/** Periods without a call after which the warmer goes quiet. */
const QUIET_PERIODS = 3;
/** Frames without warm calls after one timed out. */
const BACKOFF_FRAMES = 16;

/**
 * Makes a warm call before each expected sync call. `warm(kind)` makes one
 * round trip through the same path as the real calls and throws as a call
 * would: an `IpcTimeoutError` (its late reply is dropped by the pipe)
 * holds warming off for a while, anything else ends it, and the next real
 * call says why. `kind` is what the last real call said about itself (for
 * a caller whose calls take different paths: the IPA proxy tells
 * flat-struct calls from those of the general codec).
 */
export class CadenceWarmer {
  readonly #warm: (kind: number) => void;
  /** The kind of the last real call. */
  #kind = 0;
  /** `performance.now()` at the start of the last real call. */
  #last = -Infinity;
  /** The learnt gap between calls, ms (0: no cadence yet). */
  #period = 0;
  /** The armed timer (0: none). */
  #timer = 0;
  /** The `#last` that a warm call was made for (one per gap). */
  #warmedFor = -Infinity;
  /** Frames left without warm calls after a failure. */
  #backoff = 0;
  #closed = false;
  /** Warm calls made (for tests and traces). */
  warmCalls = 0;
  /** Times the timer fired (for tests). */
  fires = 0;

  constructor(warm: (kind: number) => void) {
    this.#warm = warm;
  }

  /**
   * To be called at the start of every real call, with `performance.now()`
   * and the call's kind (0 unless the caller has kinds).
   */
  note(now: number, kind = 0): void {
    this.#kind = kind;
    const gap = now - this.#last;
    this.#last = now;
    if (gap < WARM_MIN_PERIOD_MS) return; // a burst: the cadence stands
    if (gap > WARM_MAX_PERIOD_MS) {
      this.#period = 0;
      return;
    }
    // A shorter gap is taken at once, a longer one slowly: timers and
    // wake-ups only ever make a gap late, and a warm call made early is
    // still of use while one made after its call is not.
    const p = this.#period;
    if (p === 0 || Math.abs(gap - p) >= p * PERIOD_TOLERANCE) {
      this.#period = gap;
    } else if (gap < p) this.#period = gap;
    else this.#period = p + (gap - p) / 8;
    if (this.#timer === 0 && !this.#closed) this.#arm(now);
  }

  /** The learnt period in ms (0: none). */
  get period(): number {
    return this.#period;
  }

  /** Stops warming (idempotent). */
  close(): void {
    this.#closed = true;
    if (this.#timer !== 0) clearTimeout(this.#timer);
    this.#timer = 0;
  }

  #fire = (): void => {
    this.#timer = 0;
    this.fires++;
    const period = this.#period;
    if (this.#closed || period === 0) return;
    const now = performance.now();
    const since = now - this.#last;
    if (since > QUIET_PERIODS * period) {
      // The calls stopped: the next one starts the cadence again.
      this.#period = 0;
      return;
    }
    // Half a period or more since the last call and none since: the next
    // one is near (a timer may fire late; a call that came meanwhile
    // moved #last and is warm enough).
    if (since >= period / 2 && this.#warmedFor !== this.#last) {
      this.#warmedFor = this.#last;
      if (this.#backoff > 0) this.#backoff--;
      else {
        this.warmCalls++;
        try {
          this.#warm(this.#kind);
        } catch (e) {
          if (e instanceof IpcTimeoutError) this.#backoff = BACKOFF_FRAMES;
          else this.close();
        }
      }
    }
    // The warm call may have closed the warmer (its pipe is gone).
    if (!this.#closed) this.#arm(performance.now());
  };

  /** Arms the timer for the next call not warmed yet. */
  #arm(now: number): void {
    const period = this.#period;
    let due = this.#last + period - WARM_LEAD_MS;
    if (this.#warmedFor === this.#last) due += period;
    // Never due now: a timer of 0 ms would fire again and again until the
    // warmer goes quiet.
    while (due <= now) due += period;
    // A number in Deno (Node's typings say an object).
    this.#timer = Number(setTimeout(this.#fire, Math.max(0, due - now)));
    Deno.unrefTimer(this.#timer);
  }
}
