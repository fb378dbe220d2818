// Adaptive spinning for a thread that waits for a reply (or the next
// message): spin only while it pays.
//
// A reply caught while spinning costs no wake-up of the waiter (on these
// VMs an idle vCPU halts at once and a cross-CPU wake-up costs the waker
// 24-48 µs); a reply that comes after the window has cost the whole window
// for nothing, and a spin on a CPU the peer needs delays the peer (with
// both processes on one CPU: 137 µs a call with a 50 µs spin, 20 µs
// without). So the window is used while most recent waits ended inside it,
// and switched off otherwise (after an idle frame period, or when the CPUs
// are busy), with a probe now and then, at a rate halved after each failed
// probe, to notice when spinning pays again.

/** Weight of one wait in the running hit rate (1/8: the last ~8 waits). */
const HIT_WEIGHT = 1 / 8;
/** Spin while at least half of the recent waits ended inside the window. */
const HIT_RATE_ON = 0.5;
/** First probe this many waits after spinning stopped. */
const PROBE_FIRST = 16;
/** Longest gap between probes, in waits. */
const PROBE_MAX = 1024;

/** Whether the next wait should spin, learnt from how waits ended. */
export class AdaptiveSpin {
  readonly #windowUs: number;
  #hitRate = 1;
  #probeGap = PROBE_FIRST;
  #untilProbe = 0;
  #probing = false;

  /**
   * @param windowUs The most a wait spins, µs (0: never; also on a single
   *   CPU, where spinning only delays the peer).
   * @param cpus CPUs available.
   */
  constructor(windowUs: number, cpus: number) {
    this.#windowUs = cpus > 1 ? windowUs : 0;
    if (this.#windowUs === 0) this.#hitRate = 0;
  }

  /** Whether spinning is on now (hit rate above the threshold). */
  get spinning(): boolean {
    return this.#windowUs > 0 && this.#hitRate >= HIT_RATE_ON;
  }

  /** Microseconds the next wait may spin: the window, or 0. */
  next(): number {
    if (this.#windowUs === 0) return 0;
    if (this.#hitRate >= HIT_RATE_ON) return this.#windowUs;
    if (this.#untilProbe > 0) {
      this.#untilProbe--;
      return 0;
    }
    this.#probing = true;
    return this.#windowUs;
  }

  /**
   * Records how a wait that spun {@linkcode AdaptiveSpin.next} µs ended.
   *
   * @param spunUs What the wait was given (0: it did not spin; not counted).
   * @param caught Whether the message came while spinning.
   */
  record(spunUs: number, caught: boolean): void {
    if (spunUs === 0) return;
    this.#hitRate += ((caught ? 1 : 0) - this.#hitRate) * HIT_WEIGHT;
    if (this.#probing) {
      this.#probing = false;
      if (caught) {
        // Pays again: back on at once, probes start over.
        this.#hitRate = HIT_RATE_ON;
        this.#probeGap = PROBE_FIRST;
      } else {
        this.#probeGap = Math.min(this.#probeGap * 2, PROBE_MAX);
      }
    }
    if (this.#hitRate < HIT_RATE_ON) this.#untilProbe = this.#probeGap;
  }
}
