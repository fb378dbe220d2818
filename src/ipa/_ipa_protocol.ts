// The IPA layer's use of an IPC pipe, shared by the proxies and the host.
//
//   cmd INIT (0x7fff0000), a call: JSON { module, interface, pipelineName? }
//     reply: JSON { info } once the module is loaded and made, or an error
//   cmd i + 1, a call (sync method i) or an async message (async method i):
//     the parameters, encoded (ipa_serializer.ts); a call's reply is the
//     encoded result (empty without one)
//   cmd i + 1, an event from the host (cookie 0): event i's payload
//   cmd WARMUP (0x7fff0001), a call: a WARMUP_METHOD params value; the
//     host decodes it and answers it encoded again (the proxy runs a few
//     thousand at start so that the first frames run optimised code)
//   cmd WARMUP_FLAT (0x7fff0002), the same with WARMUP_FLAT_METHOD
import type { IpaModuleInfo } from "./ipa_module.ts";
import { type IpaInterfaceSpec, type IpaMethodSpec, T } from "./ipa_schema.ts";

export const CMD_INIT = 0x7fff0000;
export const CMD_WARMUP = 0x7fff0001;
export const CMD_WARMUP_FLAT = 0x7fff0002;

// A frame's usual parameter kinds; the general warm-up adds an array.
const FLAT_FIELDS = {
  frame: T.u32,
  stats: T.bytes,
  gain: T.f64,
  on: T.bool,
  name: T.string,
  exposure: T.optional(T.i64),
};

/** An echo method: the struct of `fields` in and out. */
function echoMethod(fields: Parameters<typeof T.struct>[0]): IpaMethodSpec {
  return Object.freeze({
    sync: true,
    params: T.struct(fields),
    result: T.struct(fields),
  });
}

/** The method the warm-up calls: the kinds a frame's call usually has. */
export const WARMUP_METHOD: IpaMethodSpec = echoMethod(
  {
    ...FLAT_FIELDS,
    zones: T.array(T.u16),
  } as typeof FLAT_FIELDS,
);

/** A value of WARMUP_METHOD's params. */
export const WARMUP_VALUE: Readonly<Record<string, unknown>> = Object.freeze({
  frame: 1,
  stats: new Uint8Array(64),
  gain: 1.5,
  on: true,
  name: "warm-up",
  zones: [1, 2, 3, 4],
  exposure: 10_000n,
});

/**
 * The warm-up method of flat structs (scalars, bytes, strings, optionals:
 * the usual per-frame parameters, which take the flat codec,
 * `_ipa_flat_codec.ts`); {@linkcode WARMUP_METHOD} takes the general one.
 * Warming only one of them leaves V8 no type feedback for the other, and
 * the first frames then throw the optimised code away.
 */
export const WARMUP_FLAT_METHOD: IpaMethodSpec = echoMethod(FLAT_FIELDS);

/** A value of WARMUP_FLAT_METHOD's params. */
export const WARMUP_FLAT_VALUE: Readonly<Record<string, unknown>> = Object
  .freeze({
    frame: 1,
    stats: new Uint8Array(64),
    gain: 1.5,
    on: true,
    name: "warm-up",
    exposure: 10_000n,
  });

/**
 * Sync round trips an IPA proxy makes at start by default: V8 optimises
 * the per-call path after a few thousand runs; at 30 calls a second that
 * would take minutes of frames (measured here: 30 fps p50 of an isolated
 * IPA call 434 -> 245 µs after 3,000 warm-up calls).
 */
export const DEFAULT_WARMUP_CALLS = 2000;

export interface InitRequest {
  module: string;
  interface: IpaInterfaceSpec;
  /** When set, a module serving another pipeline is refused (mismatch). */
  pipelineName?: string;
}

export interface InitReply {
  info: IpaModuleInfo;
}

/**
 * Error code (IpcCallError) of an INIT refused because the module serves
 * another pipeline; the text is that pipeline's name.
 */
export const ERROR_PIPELINE_MISMATCH = 1;

export const json = {
  encode(v: unknown): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(v));
  },
  decode<T>(b: Uint8Array): T {
    return JSON.parse(new TextDecoder().decode(b)) as T;
  },
};
