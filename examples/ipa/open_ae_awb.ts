// An open-source IPA module: auto exposure and auto white balance from a
// statistics buffer passed by descriptor. It is signed with the example key
// (open_ae_awb.ts.sign), so an IpaManager that trusts that key runs it in a
// thread. Self-contained on purpose: a signature covers this file only.
import {
  CameraControls as C,
  type CameraIpaInterface,
  type IpaContext,
  type IpaImplementation,
  type IpaModuleInfo,
  readFd,
} from "../../mod.ts";

export const ipaModuleInfo: IpaModuleInfo = {
  name: "open-ae-awb",
  pipelineName: "simple",
  apiVersion: 1,
};

/** Exposure and gain limits of the simulated sensor. */
const MAX_EXPOSURE_US = 33_000;
const MAX_GAIN = 16;
const TARGET_Y = 0.18;

/** AE/AWB state for one camera. */
export interface AeAwb {
  exposureUs: number;
  gain: number;
}

/**
 * One AE/AWB step from 16 zones of float32 [r, g, b] means: scales the
 * exposure (then gain) toward an 18 % grey mean, and computes grey-world
 * white-balance gains.
 */
export function aeAwbStep(state: AeAwb, stats: Float32Array) {
  let r = 0, g = 0, b = 0;
  const zones = Math.floor(stats.length / 3);
  for (let z = 0; z < zones; z++) {
    r += stats[3 * z];
    g += stats[3 * z + 1];
    b += stats[3 * z + 2];
  }
  r /= zones || 1;
  g /= zones || 1;
  b /= zones || 1;
  const y = 0.299 * r + 0.587 * g + 0.114 * b;
  const ratio = Math.min(4, Math.max(0.25, TARGET_Y / Math.max(y, 1e-4)));
  let total = state.exposureUs * state.gain * ratio;
  state.exposureUs = Math.min(MAX_EXPOSURE_US, Math.max(100, total));
  total /= state.exposureUs;
  state.gain = Math.min(MAX_GAIN, Math.max(1, total));
  const gains = [g / Math.max(r, 1e-4), g / Math.max(b, 1e-4)];
  const lux = Math.round(400 * y / TARGET_Y);
  const cct = Math.round(
    6500 * Math.min(2, Math.max(0.5, b / Math.max(r, 1e-4))),
  );
  return { gains, lux, cct };
}

export function createIpa(
  ctx: IpaContext<CameraIpaInterface>,
): IpaImplementation<CameraIpaInterface> {
  const state: AeAwb = { exposureUs: 10_000, gain: 1 };
  const buffers = new Map<number, number>();
  let lastGains = [1, 1];
  return {
    init: () => ({
      controls: new Map([[C.ExposureTime, MAX_EXPOSURE_US], [
        C.AnalogueGain,
        MAX_GAIN,
      ]]),
    }),
    start: () => {},
    stop: () => {},
    configure: () => ({ controls: new Map([[C.AeEnable, true]]) }),
    mapBuffers: ({ buffers: list }) => {
      for (const b of list) {
        buffers.set(b.id, b.size);
        b.fd.close(); // sizes are all we need
      }
    },
    unmapBuffers: ({ ids }) => {
      for (const id of ids) buffers.delete(id);
    },
    fillParams: () => ({
      controls: new Map<number, number | number[]>([
        [C.ColourGains, lastGains],
      ]),
    }),
    queueRequest: () => {},
    processStats: ({ frame, stats }) => {
      const bytes = readFd(stats);
      stats.close();
      const f32 = new Float32Array(
        bytes.buffer,
        0,
        Math.floor(bytes.length / 4),
      );
      const out = aeAwbStep(state, f32);
      lastGains = out.gains;
      ctx.emit("setSensorControls", {
        frame,
        controls: new Map([[C.ExposureTime, state.exposureUs], [
          C.AnalogueGain,
          state.gain,
        ]]),
      });
      ctx.emit("metadataReady", {
        frame,
        metadata: new Map<number, number | number[]>([
          [C.ColourGains, out.gains],
          [C.Lux, out.lux],
          [C.ColourTemperature, out.cct],
        ]),
      });
    },
  };
}
