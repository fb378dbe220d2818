// One simulated camera: a pipeline handler that drives its own IPA. Per frame
// it asks the IPA for ISP parameters (a sync call), writes the frame's
// statistics into a memfd from a small pool and passes it by descriptor
// (async `processStats`), and applies the sensor controls the IPA sends back
// (an event) to the next frame it simulates.
import {
  CameraControls as C,
  type CameraIpaInterface,
  createMemfd,
  describeExit,
  type IpaCrashEvent,
  type IpaProxyOf,
  IpcTimeoutError,
  type OwnedFd,
  writeFd,
} from "../../mod.ts";
import { VENDOR_CRASH_CONTROL } from "../ipa/vendor_ae_awb.ts";

export type CameraIpa = IpaProxyOf<CameraIpaInterface>;

const STATS_BUFFERS = 4;
const ZONES = 16;

/** Latency samples in microseconds, with percentiles. */
export class Samples {
  readonly #v: number[] = [];
  /** Adds a sample (ms, stored as µs). */
  addMs(ms: number): void {
    this.#v.push(ms * 1000);
  }
  /** Number of samples. */
  get count(): number {
    return this.#v.length;
  }
  /** The p-th percentile (nearest rank), µs; NaN without samples. */
  percentile(p: number): number {
    if (this.#v.length === 0) return NaN;
    const s = [...this.#v].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  }
}

export class SimCamera {
  readonly index: number;
  readonly ipa: CameraIpa;
  readonly sync = new Samples();
  readonly events = new Samples();
  frames = 0;
  timeouts = 0;
  stopMs = NaN;
  crashed: string | null = null;
  #buffers: OwnedFd[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #sent = new Map<number, number>(); // frame -> time processStats was sent
  #exposureUs = 10_000;
  #gain = 1;
  #crashAt = -1;

  constructor(index: number, ipa: CameraIpa) {
    this.index = index;
    this.ipa = ipa;
    ipa.on("setSensorControls", ({ frame, controls }) => {
      const sent = this.#sent.get(frame);
      if (sent !== undefined) {
        this.events.addMs(performance.now() - sent);
        this.#sent.delete(frame);
      }
      this.#exposureUs = Number(
        controls.get(C.ExposureTime) ?? this.#exposureUs,
      );
      this.#gain = Number(controls.get(C.AnalogueGain) ?? this.#gain);
    });
    ipa.addEventListener("crash", (e) => {
      this.crashed = describeExit((e as IpaCrashEvent).exit);
      clearInterval(this.#timer);
    });
  }

  /** init, configure, mapBuffers, start; then frames at `fps`. */
  start(fps: number, crashAfterFrames = -1): void {
    this.ipa.init({ sensorModel: `sim-${this.index}` });
    this.ipa.configure({
      width: 1920,
      height: 1080,
      pixelFormat: "SRGGB10",
      frameDurationUs: Math.round(1e6 / fps),
    });
    this.#buffers = Array.from(
      { length: STATS_BUFFERS },
      (_, i) => createMemfd({ name: `cam${this.index}-stats${i}` }),
    );
    this.ipa.mapBuffers({
      buffers: this.#buffers.map((fd, id) => ({ id, fd, size: ZONES * 12 })),
    });
    this.ipa.start();
    this.#crashAt = crashAfterFrames;
    this.#timer = setInterval(() => this.#frame(), 1000 / fps);
  }

  #frame(): void {
    if (this.crashed) return;
    const frame = ++this.frames;
    try {
      const t0 = performance.now();
      this.ipa.fillParams({ frame });
      this.sync.addMs(performance.now() - t0);
      const controls = new Map<number, boolean>();
      if (frame === this.#crashAt) controls.set(VENDOR_CRASH_CONTROL, true);
      this.ipa.queueRequest({ frame, controls });
      const stats = this.#buffers[frame % STATS_BUFFERS];
      writeFd(stats, this.#statistics(frame));
      this.#sent.set(frame, performance.now());
      this.ipa.processStats({ frame, stats });
    } catch (e) {
      if (e instanceof IpcTimeoutError) this.timeouts++;
      else if (!this.crashed) this.crashed = (e as Error).message;
    }
  }

  /** 16 zones of float32 [r, g, b]: a scene lit by a slow sine, seen
   * through the current exposure and gain, with a per-camera colour cast. */
  #statistics(frame: number): Uint8Array {
    const light = 0.5 + 0.4 * Math.sin(frame / 40 + this.index);
    const level = Math.min(1, light * (this.#exposureUs / 33_000) * this.#gain);
    const cast = [1 + 0.1 * this.index, 1, 1 - 0.05 * this.index];
    const zones = new Float32Array(ZONES * 3);
    for (let z = 0; z < ZONES; z++) {
      const v = level * (0.8 + 0.4 * (z / ZONES));
      for (let c = 0; c < 3; c++) zones[3 * z + c] = Math.min(1, v * cast[c]);
    }
    return new Uint8Array(zones.buffer);
  }

  /** Stops producing frames (the IPA keeps running). */
  halt(): void {
    clearInterval(this.#timer);
  }

  /** The sync `stop()`, timed. */
  stop(): void {
    if (this.crashed) return;
    const t0 = performance.now();
    try {
      this.ipa.stop();
    } catch (e) {
      if (e instanceof IpcTimeoutError) this.timeouts++;
      else this.crashed = (e as Error).message;
    }
    this.stopMs = performance.now() - t0;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.ipa.close();
    for (const b of this.#buffers) b.close();
  }
}
