// Precompiled codecs for flat structs, the usual parameters and results of
// a frame's IPA call: a struct whose fields are scalars, strings, bytes,
// descriptors, or optionals of those. The general walker of
// ipa_serializer.ts interprets the type on every call (a switch per value,
// a path stack, Object.keys per struct); after an idle frame period every
// piece of code a call runs costs, so a flat struct gets a plan made once
// (a field list with a kind code each) and one tight loop per direction.
//
// Neither direction makes a typed array it does not hand out (src/common/
// _bytes.ts: each costs 5-16 µs on a cold path): the encoder returns a
// borrowed view of its scratch buffer, the decoder reads numbers without a
// DataView over the caller's bytes. A decoded `bytes` field needs an array
// of its own (the caller keeps it): the decoder takes one made ahead of
// time when there is one of the right length. prepareSpares() makes them
// where a thread would only wait otherwise (a sync caller waiting for its
// reply, a worker after sending one), for the lengths the last decoding of
// each plan saw, so a call that repeats every frame finds its arrays made.
//
// The plans only ever take the happy path: on anything the least bit wrong
// (a missing or unknown field, a value out of range, a truncated buffer)
// they return null and the caller runs the general walker, which reports
// the error with its path and closes the descriptors. The bytes are the
// same as the walker's (docs/ipa_wire.md); tests/ipa compare them.
import type { IpaStructType, IpaType } from "./ipa_schema.ts";
import { type FdLike, OwnedFd } from "../fd/owned_fd.ts";
import { copyBytes, ViewCache } from "../common/_bytes.ts";

const K = Object.freeze({
  BOOL: 0,
  U8: 1,
  I8: 2,
  U16: 3,
  I16: 4,
  U32: 5,
  I32: 6,
  F32: 7,
  F64: 8,
  U64: 9,
  I64: 10,
  STRING: 11,
  BYTES: 12,
  FD: 13,
});

const KIND_CODES: Readonly<Record<string, number>> = Object.freeze({
  bool: K.BOOL,
  u8: K.U8,
  i8: K.I8,
  u16: K.U16,
  i16: K.I16,
  u32: K.U32,
  i32: K.I32,
  f32: K.F32,
  f64: K.F64,
  u64: K.U64,
  i64: K.I64,
  string: K.STRING,
  bytes: K.BYTES,
  fd: K.FD,
});

const U32_MAX = 0xffff_ffff;
const FD_MAX = 0x7fff_ffff;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
/** Bytes of each fixed-size kind (by code). */
const SIZES = [1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 4, 4, 4];
const INT_MIN = [0, 0, -0x80, 0, -0x8000, 0, -0x8000_0000];
const INT_MAX = [1, 0xff, 0x7f, 0xffff, 0x7fff, U32_MAX, 0x7fff_ffff];

/** One struct's plan: its fields in order, a kind code and optionality each. */
export interface FlatPlan {
  readonly names: readonly string[];
  readonly codes: Int8Array;
  readonly optional: Uint8Array;
  /** Fields that must be present. */
  readonly required: number;
  /** Per field: an array made ahead for a `bytes` value, or undefined. */
  readonly spares: (Uint8Array | undefined)[];
  /** Per field: the length its next spare gets (-1: none). */
  readonly spareLengths: Int32Array;
  /** Whether the plan is in the list prepareSpares() works through. */
  wanting: boolean;
}

/** Longest `bytes` value a spare is made for. */
export const SPARE_MAX = 4096;

/** Plans whose spares are to be made. */
const wanting: FlatPlan[] = [];

const plans = new WeakMap<IpaType, FlatPlan | null>();

/** The plan of `type`, or null when it is not a flat struct. */
export function flatPlan(type: IpaType): FlatPlan | null {
  const known = plans.get(type);
  if (known !== undefined) return known;
  let plan: FlatPlan | null = null;
  if (
    typeof type === "object" && type !== null && type.kind === "struct" &&
    typeof (type as IpaStructType).fields === "object"
  ) {
    const fields = (type as IpaStructType).fields;
    const names = Object.keys(fields);
    const codes = new Int8Array(names.length);
    const optional = new Uint8Array(names.length);
    let ok = names.length > 0;
    let required = 0;
    for (let i = 0; i < names.length && ok; i++) {
      let t = fields[names[i]];
      if (t?.kind === "optional") {
        optional[i] = 1;
        t = t.inner;
      } else required++;
      const code = KIND_CODES[t?.kind as string];
      if (code === undefined || names[i] === "__proto__") ok = false;
      else codes[i] = code;
    }
    if (ok) {
      plan = {
        names,
        codes,
        optional,
        required,
        spares: names.map(() => undefined),
        spareLengths: new Int32Array(names.length).fill(-1),
        wanting: false,
      };
    }
  }
  plans.set(type, plan);
  return plan;
}

let scratch = new Uint8Array(256);
let scratchView = new DataView(scratch.buffer);
let scratchViews = new ViewCache(scratch);
/** Where the decoder reads a number wider than a byte (no DataView made). */
const num = new Uint8Array(8);
const numView = new DataView(num.buffer);
const utf8Encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function room(at: number, n: number): void {
  if (at + n <= scratch.length) return;
  let cap = scratch.length * 2;
  while (cap < at + n) cap *= 2;
  const bigger = new Uint8Array(cap);
  bigger.set(scratch.subarray(0, at));
  scratch = bigger;
  scratchView = new DataView(bigger.buffer);
  scratchViews = new ViewCache(bigger);
}

/**
 * Encodes `v` by `plan`, or returns null when `v` is not a valid value of
 * it (the caller then runs the general encoder for the error). The bytes
 * are borrowed: a view of this realm's scratch buffer, valid until the
 * next encodeFlat().
 */
export function encodeFlat(
  plan: FlatPlan,
  v: unknown,
): { data: Uint8Array; fds: FdLike[] } | null {
  if (
    typeof v !== "object" || v === null || Array.isArray(v) ||
    v instanceof Map || v instanceof Uint8Array || v instanceof OwnedFd
  ) return null;
  const obj = v as Record<string, unknown>;
  const { names, codes, optional } = plan;
  let own = 0;
  for (const k in obj) {
    if (!Object.hasOwn(obj, k)) continue;
    own++;
  }
  let known = 0;
  const fds: FdLike[] = [];
  let at = 0;
  for (let i = 0; i < names.length; i++) {
    const has = Object.hasOwn(obj, names[i]);
    if (has) known++;
    const x = has ? obj[names[i]] : undefined;
    const code = codes[i];
    if (optional[i] === 1) {
      room(at, 1);
      if (x === undefined) {
        scratch[at++] = 0;
        continue;
      }
      scratch[at++] = 1;
    } else if (x === undefined) return null;
    room(at, SIZES[code]);
    const d = scratchView;
    switch (code) {
      case K.BOOL:
        if (typeof x !== "boolean") return null;
        scratch[at] = x ? 1 : 0;
        break;
      case K.U8:
      case K.I8:
      case K.U16:
      case K.I16:
      case K.U32:
      case K.I32:
        if (
          typeof x !== "number" || !Number.isInteger(x) || x < INT_MIN[code] ||
          x > INT_MAX[code]
        ) return null;
        if (code <= K.I8) d.setInt8(at, x);
        else if (code <= K.I16) d.setInt16(at, x, true);
        else d.setInt32(at, x, true);
        break;
      case K.F32:
        if (typeof x !== "number") return null;
        d.setFloat32(at, x, true);
        break;
      case K.F64:
        if (typeof x !== "number") return null;
        d.setFloat64(at, x, true);
        break;
      case K.U64:
        if (typeof x !== "bigint" || x < 0n || x > U64_MAX) return null;
        d.setBigUint64(at, x, true);
        break;
      case K.I64:
        if (typeof x !== "bigint" || x < I64_MIN || x > I64_MAX) return null;
        d.setBigInt64(at, x, true);
        break;
      case K.STRING: {
        if (typeof x !== "string" || !x.isWellFormed()) return null;
        room(at, 4 + x.length * 3);
        const { written } = utf8Encoder.encodeInto(
          x,
          scratch.subarray(at + 4, at + 4 + x.length * 3),
        );
        scratchView.setUint32(at, written, true);
        at += 4 + written;
        continue;
      }
      case K.BYTES:
        if (!(x instanceof Uint8Array) || x.length > U32_MAX) return null;
        room(at, 4 + x.length);
        scratchView.setUint32(at, x.length, true);
        copyBytes(scratch, at + 4, x);
        at += 4 + x.length;
        continue;
      case K.FD:
        if (x instanceof OwnedFd) {
          if (!x.isValid) return null;
        } else if (
          typeof x !== "number" || !Number.isInteger(x) || x < 0 || x > FD_MAX
        ) return null;
        d.setUint32(at, fds.length, true);
        fds.push(x as FdLike);
        break;
    }
    at += SIZES[code];
  }
  if (known !== own) return null; // an unknown field
  return { data: scratchViews.view(0, at), fds };
}

/**
 * Decodes `data` (which may be borrowed: nothing returned refers to it) by
 * `plan`, or returns null when it is not exactly an
 * encoding of it using every descriptor once (the caller then runs the
 * general decoder, which says why and closes the descriptors).
 */
export function decodeFlat(
  plan: FlatPlan,
  data: Uint8Array,
  fds: readonly OwnedFd[],
): Record<string, unknown> | null {
  const { names, codes, optional } = plan;
  const d = numView;
  const end = data.length;
  const out: Record<string, unknown> = {};
  let usedFds = 0;
  let at = 0;
  for (let i = 0; i < names.length; i++) {
    if (optional[i] === 1) {
      if (at >= end) return null;
      const p = data[at++];
      if (p === 0) continue;
      if (p !== 1) return null;
    }
    const code = codes[i];
    const size = SIZES[code];
    if (at + size > end) return null;
    // Read through `num`: no DataView made over the caller's bytes.
    copyBytes(num, 0, data, at, size);
    let x: unknown;
    switch (code) {
      case K.BOOL: {
        const b = data[at];
        if (b > 1) return null;
        x = b === 1;
        break;
      }
      case K.U8:
        x = data[at];
        break;
      case K.I8:
        x = d.getInt8(0);
        break;
      case K.U16:
        x = d.getUint16(0, true);
        break;
      case K.I16:
        x = d.getInt16(0, true);
        break;
      case K.U32:
        x = d.getUint32(0, true);
        break;
      case K.I32:
        x = d.getInt32(0, true);
        break;
      case K.F32:
        x = d.getFloat32(0, true);
        break;
      case K.F64:
        x = d.getFloat64(0, true);
        break;
      case K.U64:
        x = d.getBigUint64(0, true);
        break;
      case K.I64:
        x = d.getBigInt64(0, true);
        break;
      case K.STRING:
      case K.BYTES: {
        const n = d.getUint32(0, true);
        at += 4;
        if (n > end - at) return null;
        if (code === K.BYTES) x = takeBytes(plan, i, data, at, n);
        else {
          try {
            x = utf8.decode(data.subarray(at, at + n));
          } catch {
            return null;
          }
        }
        at += n;
        out[names[i]] = x;
        continue;
      }
      case K.FD: {
        const idx = d.getUint32(0, true);
        // In order and each once: the encoder numbers them that way; any
        // other use is checked (and reported) by the general decoder.
        if (idx !== usedFds || idx >= fds.length) return null;
        usedFds++;
        x = fds[idx];
        break;
      }
    }
    at += SIZES[code];
    out[names[i]] = x;
  }
  if (at !== end || usedFds !== fds.length) return null;
  return out;
}

/** A copy of `data[at, at + n)`, field `i` of `plan`: its spare if it fits. */
function takeBytes(
  plan: FlatPlan,
  i: number,
  data: Uint8Array,
  at: number,
  n: number,
): Uint8Array {
  const spare = plan.spares[i];
  let out: Uint8Array;
  if (spare !== undefined && spare.length === n) {
    copyBytes(spare, 0, data, at, n);
    out = spare;
  } else out = data.slice(at, at + n);
  plan.spares[i] = undefined;
  plan.spareLengths[i] = n <= SPARE_MAX ? n : -1;
  if (n <= SPARE_MAX && !plan.wanting) {
    plan.wanting = true;
    wanting.push(plan);
  }
  return out;
}

/** Whether {@linkcode prepareSpares} has arrays to make. */
export function sparesWanted(): boolean {
  return wanting.length > 0;
}

/**
 * Makes the arrays the next decodings of `bytes` fields take (one per
 * field, of the length it had last), for a thread that would otherwise
 * only wait. Never throws: a spare is only ever a saving.
 */
export function prepareSpares(): void {
  try {
    for (const plan of wanting) {
      plan.wanting = false;
      const { spares, spareLengths } = plan;
      for (let i = 0; i < spares.length; i++) {
        const n = spareLengths[i];
        if (n >= 0 && spares[i] === undefined) spares[i] = new Uint8Array(n);
      }
    }
  } catch {
    // Out of memory: the decoder copies as it would without spares, and
    // every plan may ask again.
    for (const plan of wanting) plan.wanting = false;
  }
  wanting.length = 0;
}
