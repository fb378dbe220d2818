/**
 * The default IPA interface for cameras, modelled on libcamera's: sync
 * `init`, `start`, `stop`, `configure`, `mapBuffers`, `unmapBuffers`,
 * `fillParams`;
 * async `queueRequest` and `processStats`; events `setSensorControls` and
 * `metadataReady`.
 *
 * @module
 */
import {
  defineIpaInterface,
  type IpaArrayType,
  type IpaInterface,
  type IpaInterfaceSpec,
  type IpaOptionalType,
  type IpaScalarType,
  type IpaStructType,
  T,
} from "./ipa_schema.ts";

/**
 * Control ids used in {@linkcode CameraIpa} control lists (a small subset
 * of libcamera's controls, with values of the same meaning).
 *
 * @example
 * ```ts
 * import { CameraControls } from "@isola/isola";
 *
 * const controls = new Map([[CameraControls.ExposureTime, 10_000]]);
 * console.log(controls.get(CameraControls.ExposureTime)); // 10000
 * ```
 */
export const CameraControls: Readonly<{
  ExposureTime: 1;
  AnalogueGain: 2;
  ColourGains: 3;
  Lux: 4;
  ColourTemperature: 5;
  AeEnable: 6;
}> = Object.freeze({
  /** Exposure time in microseconds (number). */
  ExposureTime: 1,
  /** Analogue gain, 1.0 = unity (number). */
  AnalogueGain: 2,
  /** White balance gains `[red, blue]` (number[]). */
  ColourGains: 3,
  /** Estimated scene illuminance in lux (number). */
  Lux: 4,
  /** Estimated colour temperature in kelvin (number). */
  ColourTemperature: 5,
  /** Whether auto exposure is on (boolean). */
  AeEnable: 6,
});

/**
 * The declaration of {@linkcode CameraIpa}, spelled out as a type (the
 * public API has no inferred types).
 */
export interface CameraIpaSpec extends IpaInterfaceSpec {
  /** `"camera"` */
  readonly name: "camera";
  /** 1 */
  readonly version: 1;
  /** The methods. */
  readonly methods: {
    /** Loads tuning for a sensor; returns the sensor's control limits. */
    readonly init: {
      readonly sync: true;
      readonly params: IpaStructType<
        {
          sensorModel: IpaScalarType<"string">;
          tuning: IpaOptionalType<IpaScalarType<"bytes">>;
        }
      >;
      readonly result: IpaStructType<{ controls: IpaScalarType<"controls"> }>;
    };
    /** Starts the algorithms: events flow from now on. */
    readonly start: {
      readonly sync: true;
      readonly params: IpaStructType<Record<never, never>>;
    };
    /** Stops them: no event is delivered after it returns. */
    readonly stop: {
      readonly sync: true;
      readonly params: IpaStructType<Record<never, never>>;
    };
    /** Configures for a stream; returns the controls in effect. */
    readonly configure: {
      readonly sync: true;
      readonly params: IpaStructType<{
        width: IpaScalarType<"u32">;
        height: IpaScalarType<"u32">;
        pixelFormat: IpaScalarType<"string">;
        frameDurationUs: IpaScalarType<"u32">;
      }>;
      readonly result: IpaStructType<{ controls: IpaScalarType<"controls"> }>;
    };
    /** Hands buffers (by descriptor) to the IPA. */
    readonly mapBuffers: {
      readonly sync: true;
      readonly params: IpaStructType<{
        buffers: IpaArrayType<
          IpaStructType<
            {
              id: IpaScalarType<"u32">;
              fd: IpaScalarType<"fd">;
              size: IpaScalarType<"u32">;
            }
          >
        >;
      }>;
    };
    /** Takes buffers back. */
    readonly unmapBuffers: {
      readonly sync: true;
      readonly params: IpaStructType<
        { ids: IpaArrayType<IpaScalarType<"u32">> }
      >;
    };
    /**
     * The ISP parameters for a frame about to be queued (libcamera's
     * `fillParamsBuffer`, made synchronous here: the pipeline waits).
     */
    readonly fillParams: {
      readonly sync: true;
      readonly params: IpaStructType<{ frame: IpaScalarType<"u32"> }>;
      readonly result: IpaStructType<{ controls: IpaScalarType<"controls"> }>;
    };
    /** The controls an application asked for, for a frame. */
    readonly queueRequest: {
      readonly sync: false;
      readonly params: IpaStructType<
        { frame: IpaScalarType<"u32">; controls: IpaScalarType<"controls"> }
      >;
    };
    /** A frame's statistics, in a memfd. */
    readonly processStats: {
      readonly sync: false;
      readonly params: IpaStructType<
        { frame: IpaScalarType<"u32">; stats: IpaScalarType<"fd"> }
      >;
    };
  };
  /** `start` and `stop` start and stop the algorithms. */
  readonly lifecycle: { readonly start: "start"; readonly stop: "stop" };
  /** The events. */
  readonly events: {
    /** Sensor settings for a frame. */
    readonly setSensorControls: IpaStructType<
      { frame: IpaScalarType<"u32">; controls: IpaScalarType<"controls"> }
    >;
    /** Results for a frame. */
    readonly metadataReady: IpaStructType<
      { frame: IpaScalarType<"u32">; metadata: IpaScalarType<"controls"> }
    >;
  };
}

const cameraSpec: CameraIpaSpec = {
  name: "camera",
  version: 1,
  methods: {
    init: {
      sync: true,
      params: T.struct({
        sensorModel: T.string,
        tuning: T.optional(T.bytes),
      }),
      result: T.struct({ controls: T.controls }),
    },
    start: { sync: true, params: T.struct({}) },
    stop: { sync: true, params: T.struct({}) },
    configure: {
      sync: true,
      params: T.struct({
        width: T.u32,
        height: T.u32,
        pixelFormat: T.string,
        frameDurationUs: T.u32,
      }),
      result: T.struct({ controls: T.controls }),
    },
    mapBuffers: {
      sync: true,
      params: T.struct({
        buffers: T.array(T.struct({ id: T.u32, fd: T.fd, size: T.u32 })),
      }),
    },
    unmapBuffers: { sync: true, params: T.struct({ ids: T.array(T.u32) }) },
    fillParams: {
      sync: true,
      params: T.struct({ frame: T.u32 }),
      result: T.struct({ controls: T.controls }),
    },
    queueRequest: {
      sync: false,
      params: T.struct({ frame: T.u32, controls: T.controls }),
    },
    processStats: {
      sync: false,
      params: T.struct({ frame: T.u32, stats: T.fd }),
    },
  },
  events: {
    setSensorControls: T.struct({ frame: T.u32, controls: T.controls }),
    metadataReady: T.struct({ frame: T.u32, metadata: T.controls }),
  },
  lifecycle: { start: "start", stop: "stop" },
};

/** The type of {@linkcode CameraIpa}. */
export type CameraIpaInterface = IpaInterface<CameraIpaSpec>;

/**
 * The camera IPA interface, version 1. Its lifecycle: `start` makes it
 * running (events flow, `queueRequest` and `processStats` are accepted),
 * `stop` makes it stopped.
 *
 * Per frame a pipeline calls `fillParams` (sync: ISP parameters for the
 * next frame), then `processStats` (async) once the frame's statistics are
 * in.
 *
 * Statistics buffers travel by descriptor: `processStats` carries a memfd
 * holding 16 zones of `float32 [r, g, b]` means in 0..1 (192 bytes); the
 * IPA answers with `setSensorControls` (exposure, gain) and
 * `metadataReady` (colour gains, lux, colour temperature) for that frame.
 *
 * @example
 * ```ts
 * import { CameraIpa } from "@isola/isola";
 *
 * console.log(CameraIpa.methodNames.length, CameraIpa.eventNames); // 9 [ "setSensorControls", "metadataReady" ]
 * ```
 */
export const CameraIpa: CameraIpaInterface = defineIpaInterface(cameraSpec);
