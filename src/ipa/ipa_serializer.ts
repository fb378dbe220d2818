/**
 * The IPA serializer: {@linkcode encodeIpa} turns a value of an
 * {@linkcode IpaType} into bytes plus a list of file descriptors, and
 * {@linkcode decodeIpa} turns them back, trusting nothing it reads. The
 * wire format is written down in `docs/ipa_wire.md`.
 *
 * libcamera generates a C++ serializer per mojom interface; here one
 * encoder and one decoder walk the type at run time, and flat structs (the
 * usual per-frame parameters) get a plan made once (`_ipa_flat_codec.ts`).
 *
 * @module
 */
import type { IpaStructType, IpaType } from "./ipa_schema.ts";
import { type FdLike, OwnedFd } from "../fd/owned_fd.ts";
import { decodeFlat, encodeFlat, flatPlan } from "./_ipa_flat_codec.ts";

/** Deepest nesting of arrays, maps, structs and optionals in one value. */
const MAX_DEPTH = 64;

/**
 * Elements (of arrays, maps, control lists and control float arrays) one
 * message may hold beyond its length in bytes: elements that encode in zero
 * bytes (structs without fields) would otherwise let a few bytes ask for
 * billions of objects.
 */
const ELEMENT_ALLOWANCE = 65_536;

const U32_MAX = 0xffff_ffff;
const FD_MAX = 0x7fff_ffff;

/** Tag bytes of control values in a control list. */
const TAG = Object.freeze({
  BOOL: 1,
  F64: 2,
  I64: 3,
  STRING: 4,
  F64_ARRAY: 5,
});

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Why {@linkcode decodeIpa} rejected its input. */
export type IpaDecodeErrorReason =
  /** The data ends inside a value, or a length runs past its end. */
  | "truncated"
  /** Bytes are left over after the value. */
  | "trailing-bytes"
  /** A count exceeds the message's element budget (see the wire doc). */
  | "too-large"
  /** The type nests deeper than 64 levels. */
  | "too-deep"
  /** A `bool` byte other than 0 or 1. */
  | "bad-bool"
  /** An optional's presence byte other than 0 or 1, or an unknown control tag. */
  | "bad-tag"
  /** A string that is not valid UTF-8. */
  | "bad-utf8"
  /** An fd index past the end of the descriptors. */
  | "bad-fd-index"
  /** An fd index used twice. */
  | "fd-reused"
  /** A descriptor that no fd field refers to. */
  | "fd-unused"
  /** A map key or control id that appears twice. */
  | "duplicate-key";

/**
 * {@linkcode decodeIpa} got bytes that are not an encoding of the type.
 * Every descriptor passed in was closed before this was thrown.
 *
 * @example
 * ```ts
 * import { decodeIpa, IpaDecodeError, T } from "@isola/isola";
 *
 * try {
 *   decodeIpa(T.struct({ id: T.u32 }), new Uint8Array([1, 2]), [], "params");
 * } catch (e) {
 *   const err = e as IpaDecodeError;
 *   console.log(err.reason, err.path, err.offset); // truncated params.id 0
 * }
 * ```
 */
export class IpaDecodeError extends Error {
  /** Which rule the input broke. */
  readonly reason: IpaDecodeErrorReason;
  /** Where in the value, e.g. `params.regions[2].x`. */
  readonly path: string;
  /** The byte offset at which the problem was found. */
  readonly offset: number;

  /**
   * Builds the object.
   *
   * @param reason Which rule the input broke.
   * @param path Where in the value.
   * @param offset The byte offset at which the problem was found.
   * @param detail What was seen.
   * @param owner Whose value it is, e.g. `camera.init` (for the message).
   */
  constructor(
    reason: IpaDecodeErrorReason,
    path: string,
    offset: number,
    detail: string,
    owner?: string,
  ) {
    super(
      `Cannot decode ${path}${
        ofOwner(owner)
      }: ${detail} (${reason} at byte ${offset})`,
    );
    this.name = "IpaDecodeError";
    this.reason = reason;
    this.path = path;
    this.offset = offset;
  }
}

/** What {@linkcode encodeIpa} returns. */
export interface IpaEncoded {
  /** The encoded bytes. */
  data: Uint8Array;
  /**
   * The descriptors of the value's `fd` fields, in encoding order; the data
   * holds indexes into this list. They are neither duplicated nor closed.
   */
  fds: FdLike[];
}

// Paths are kept as a stack of segments and only turned into text for an
// error message: a field name, an index, or which half of a map entry.
const KEYS = Symbol("keys");
const VALUES = Symbol("values");
type Segment = string | number | typeof KEYS | typeof VALUES;

// " of camera.init" after a path in a message, when the owner is known.
function ofOwner(owner: string | undefined): string {
  return owner === undefined ? "" : ` of ${owner}`;
}

// "a u32", "an i32", "an f64".
function aKind(kind: string): string {
  return `${/^[aeiof]/.test(kind) ? "an" : "a"} ${kind}`;
}

function formatPath(root: string, segments: readonly Segment[]): string {
  let out = root;
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else if (s === KEYS) out += ".keys";
    else if (s === VALUES) out += ".values";
    else if (/^[A-Za-z_$][\w$]*$/.test(s)) out += `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

function describe(v: unknown): string {
  switch (typeof v) {
    case "number":
      return Object.is(v, -0) ? "-0" : String(v);
    case "bigint":
      return `${v}n`;
    case "string":
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    case "boolean":
    case "undefined":
      return String(v);
    case "symbol":
      return "a symbol";
    case "function":
      return "a function";
  }
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Map) return "a Map";
  if (v instanceof Uint8Array) return "a Uint8Array";
  if (v instanceof OwnedFd) return "an OwnedFd";
  return "an object";
}

function kindOf(type: IpaType): string {
  return typeof type === "object" && type !== null ? String(type.kind) : "?";
}

// The fewest bytes a value of `type` can encode in; counts are checked
// against it before anything is allocated.
const minSizes = new WeakMap<IpaType, number>();

function minSize(type: IpaType, depth = 0): number {
  if (typeof type !== "object" || type === null) return 0;
  const known = minSizes.get(type);
  if (known !== undefined) return known;
  if (depth > MAX_DEPTH) return 0; // the walk itself reports the depth
  let n: number;
  switch (kindOf(type)) {
    case "bool":
    case "u8":
    case "i8":
    case "optional":
      n = 1;
      break;
    case "u16":
    case "i16":
      n = 2;
      break;
    case "u32":
    case "i32":
    case "f32":
    case "fd":
    case "string":
    case "bytes":
    case "controls":
    case "array":
    case "map":
      n = 4;
      break;
    case "u64":
    case "i64":
    case "f64":
      n = 8;
      break;
    case "struct":
      n = 0;
      for (const f of Object.values((type as IpaStructType).fields ?? {})) {
        n += minSize(f, depth + 1);
      }
      break;
    default:
      return 0; // unknown kinds are reported by the walk
  }
  minSizes.set(type, n);
  return n;
}

function isPlainStruct(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    !(v instanceof Map) && !(v instanceof Uint8Array) &&
    !(v instanceof OwnedFd);
}

const INT_RANGES = {
  u8: [0, 0xff],
  u16: [0, 0xffff],
  u32: [0, U32_MAX],
  i8: [-0x80, 0x7f],
  i16: [-0x8000, 0x7fff],
  i32: [-0x8000_0000, 0x7fff_ffff],
} as const;

const INT_SIZES = { u8: 1, u16: 2, u32: 4, i8: 1, i16: 2, i32: 4 } as const;

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

class Encoder {
  readonly fds: FdLike[] = [];
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #len = 0;
  #elements = 0;
  #depth = 0;
  readonly #root: string;
  readonly #owner: string | undefined;
  readonly #path: Segment[] = [];

  constructor(root: string, owner?: string) {
    this.#root = root;
    this.#owner = owner;
  }

  result(): Uint8Array {
    if (this.#elements > this.#len + ELEMENT_ALLOWANCE) {
      throw new RangeError(
        `Cannot encode ${this.#root}${
          ofOwner(this.#owner)
        }: ${this.#elements} elements in ${this.#len} bytes exceed the element budget (length + ${ELEMENT_ALLOWANCE})`,
      );
    }
    return this.#buf.slice(0, this.#len);
  }

  #fail(
    Err: TypeErrorConstructor | RangeErrorConstructor,
    what: string,
  ): never {
    throw new Err(
      `Cannot encode ${formatPath(this.#root, this.#path)}${
        ofOwner(this.#owner)
      }: ${what}`,
    );
  }

  #reserve(n: number): number {
    const at = this.#len;
    const need = at + n;
    if (need > this.#buf.length) {
      let cap = this.#buf.length * 2;
      while (cap < need) cap *= 2;
      const bigger = new Uint8Array(cap);
      bigger.set(this.#buf.subarray(0, at));
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    this.#len = need;
    return at;
  }

  #u8(v: number): void {
    const at = this.#reserve(1);
    this.#buf[at] = v;
  }

  #u32(v: number): void {
    const at = this.#reserve(4);
    this.#view.setUint32(at, v, true);
  }

  #f32(v: number): void {
    const at = this.#reserve(4);
    this.#view.setFloat32(at, v, true);
  }

  #f64(v: number): void {
    const at = this.#reserve(8);
    this.#view.setFloat64(at, v, true);
  }

  #i64(v: bigint): void {
    const at = this.#reserve(8);
    this.#view.setBigInt64(at, v, true);
  }

  #count(n: number): void {
    this.#elements += n;
    if (n > U32_MAX) this.#fail(RangeError, `${n} elements exceed 2^32 - 1`);
    this.#u32(n);
  }

  #string(v: string): void {
    if (!v.isWellFormed()) {
      this.#fail(TypeError, `${describe(v)} has a lone surrogate (not UTF-8)`);
    }
    const at = this.#reserve(4 + v.length * 3);
    const { written } = encoder.encodeInto(
      v,
      this.#buf.subarray(at + 4, at + 4 + v.length * 3),
    );
    this.#view.setUint32(at, written, true);
    this.#len = at + 4 + written;
  }

  #bytes(v: Uint8Array): void {
    if (v.length > U32_MAX) {
      this.#fail(RangeError, `${v.length} bytes exceed 2^32 - 1`);
    }
    this.#u32(v.length);
    const at = this.#reserve(v.length);
    this.#buf.set(v, at);
  }

  #int(kind: keyof typeof INT_RANGES, v: unknown): void {
    if (typeof v !== "number") {
      this.#fail(TypeError, `${describe(v)} is not ${aKind(kind)}`);
    }
    const [min, max] = INT_RANGES[kind];
    if (!Number.isInteger(v) || v < min || v > max) {
      this.#fail(RangeError, `${describe(v)} is not ${aKind(kind)}`);
    }
    const at = this.#reserve(INT_SIZES[kind]);
    const view = this.#view;
    switch (kind) {
      case "u8":
        view.setUint8(at, v);
        break;
      case "i8":
        view.setInt8(at, v);
        break;
      case "u16":
        view.setUint16(at, v, true);
        break;
      case "i16":
        view.setInt16(at, v, true);
        break;
      case "u32":
        view.setUint32(at, v, true);
        break;
      case "i32":
        view.setInt32(at, v, true);
        break;
    }
  }

  #big(kind: "u64" | "i64", v: unknown): void {
    if (typeof v !== "bigint") {
      this.#fail(TypeError, `${describe(v)} is not ${aKind(kind)}`);
    }
    const ok = kind === "u64"
      ? v >= 0n && v <= U64_MAX
      : v >= I64_MIN && v <= I64_MAX;
    if (!ok) this.#fail(RangeError, `${describe(v)} is not ${aKind(kind)}`);
    const at = this.#reserve(8);
    if (kind === "u64") this.#view.setBigUint64(at, v, true);
    else this.#view.setBigInt64(at, v, true);
  }

  #fd(v: unknown): void {
    if (v instanceof OwnedFd) {
      if (!v.isValid) {
        this.#fail(TypeError, "the OwnedFd was already closed or released");
      }
    } else if (typeof v === "number") {
      if (!Number.isInteger(v) || v < 0 || v > FD_MAX) {
        this.#fail(RangeError, `${describe(v)} is not a file descriptor`);
      }
    } else {
      this.#fail(TypeError, `${describe(v)} is not an OwnedFd or a number`);
    }
    this.#u32(this.fds.length);
    this.fds.push(v);
  }

  #controls(v: unknown): void {
    if (!(v instanceof Map)) {
      this.#fail(TypeError, `${describe(v)} is not a Map (control list)`);
    }
    this.#count(v.size);
    let i = 0;
    for (const [id, cv] of v) {
      if (typeof id !== "number") {
        this.#path.push(KEYS, i);
        this.#fail(TypeError, `control id ${describe(id)} is not a u32`);
      }
      if (!Number.isInteger(id) || id < 0 || id > U32_MAX) {
        this.#path.push(KEYS, i);
        this.#fail(RangeError, `control id ${describe(id)} is not a u32`);
      }
      this.#path.push(id);
      i++;
      this.#u32(id);
      switch (typeof cv) {
        case "boolean":
          this.#u8(TAG.BOOL);
          this.#u8(cv ? 1 : 0);
          break;
        case "number":
          this.#u8(TAG.F64);
          this.#f64(cv);
          break;
        case "bigint":
          if (cv < I64_MIN || cv > I64_MAX) {
            this.#fail(RangeError, `${describe(cv)} is not an i64`);
          }
          this.#u8(TAG.I64);
          this.#i64(cv);
          break;
        case "string":
          this.#u8(TAG.STRING);
          this.#string(cv);
          break;
        default: {
          if (!Array.isArray(cv)) {
            this.#fail(
              TypeError,
              `${
                describe(cv)
              } is not a control value (boolean, number, bigint, string or number[])`,
            );
          }
          this.#u8(TAG.F64_ARRAY);
          this.#count(cv.length);
          for (let i = 0; i < cv.length; i++) {
            const x: unknown = cv[i];
            if (typeof x !== "number") {
              this.#path.push(i);
              this.#fail(TypeError, `${describe(x)} is not a number`);
            }
            this.#f64(x);
          }
        }
      }
      this.#path.pop();
    }
  }

  #struct(type: IpaStructType, v: unknown): void {
    if (!isPlainStruct(v)) {
      this.#fail(TypeError, `${describe(v)} is not a struct object`);
    }
    const fields = type.fields;
    for (const k of Object.keys(v)) {
      if (!Object.hasOwn(fields, k)) {
        const names = Object.keys(fields).join(", ");
        this.#fail(
          TypeError,
          `unknown field ${JSON.stringify(k)} (fields: ${names || "none"})`,
        );
      }
    }
    for (const name of Object.keys(fields)) {
      const ft = fields[name];
      const fv = Object.hasOwn(v, name) ? v[name] : undefined;
      this.#path.push(name);
      if (fv === undefined && ft.kind !== "optional") {
        this.#fail(TypeError, "missing required field");
      }
      this.value(ft, fv);
      this.#path.pop();
    }
  }

  value(type: IpaType, v: unknown): void {
    switch (kindOf(type)) {
      case "bool":
        if (typeof v !== "boolean") {
          this.#fail(TypeError, `${describe(v)} is not a bool`);
        }
        this.#u8(v ? 1 : 0);
        return;
      case "u8":
      case "u16":
      case "u32":
      case "i8":
      case "i16":
      case "i32":
        this.#int(type.kind as keyof typeof INT_RANGES, v);
        return;
      case "u64":
      case "i64":
        this.#big(type.kind as "u64" | "i64", v);
        return;
      case "f32":
        if (typeof v !== "number") {
          this.#fail(TypeError, `${describe(v)} is not an f32`);
        }
        this.#f32(v);
        return;
      case "f64":
        if (typeof v !== "number") {
          this.#fail(TypeError, `${describe(v)} is not an f64`);
        }
        this.#f64(v);
        return;
      case "string":
        if (typeof v !== "string") {
          this.#fail(TypeError, `${describe(v)} is not a string`);
        }
        this.#string(v);
        return;
      case "bytes":
        if (!(v instanceof Uint8Array)) {
          this.#fail(TypeError, `${describe(v)} is not a Uint8Array`);
        }
        this.#bytes(v);
        return;
      case "fd":
        this.#fd(v);
        return;
      case "controls":
        this.#controls(v);
        return;
    }
    if (++this.#depth > MAX_DEPTH) {
      this.#fail(RangeError, `types nest deeper than ${MAX_DEPTH} levels`);
    }
    switch (type.kind) {
      case "optional":
        if (v === undefined) {
          this.#u8(0);
        } else {
          this.#u8(1);
          this.value(type.inner, v);
        }
        break;
      case "array": {
        if (!Array.isArray(v)) {
          this.#fail(TypeError, `${describe(v)} is not an array`);
        }
        this.#count(v.length);
        for (let i = 0; i < v.length; i++) {
          this.#path.push(i);
          this.value(type.items, v[i]);
          this.#path.pop();
        }
        break;
      }
      case "map": {
        if (!(v instanceof Map)) {
          this.#fail(TypeError, `${describe(v)} is not a Map`);
        }
        this.#count(v.size);
        let i = 0;
        for (const [k, x] of v) {
          this.#path.push(KEYS, i);
          this.value(type.key, k);
          this.#path.pop();
          this.#path[this.#path.length - 1] = VALUES;
          this.#path.push(i);
          this.value(type.value, x);
          this.#path.pop();
          this.#path.pop();
          i++;
        }
        break;
      }
      case "struct":
        this.#struct(type, v);
        break;
      default:
        this.#fail(
          TypeError,
          `unknown IPA type kind ${JSON.stringify(kindOf(type))}`,
        );
    }
    this.#depth--;
  }
}

/**
 * Encodes `value` as a value of `type`, checking it on the way: integers
 * must be integers in range (`number` up to 32 bits, `bigint` for u64 and
 * i64), strings well-formed, structs must have every required field and no
 * other. Descriptors are not duplicated or closed: each `fd` field's
 * descriptor is appended to `fds` and the data holds its index. The wire
 * format is described in `docs/ipa_wire.md`.
 *
 * @param type The type.
 * @param value The value.
 * @param path What to call the value in error messages. Default `"value"`.
 * @param owner Whose value it is, for error messages (e.g. `camera.init`:
 *   `Cannot encode params.x of camera.init: ...`).
 * @returns The bytes and the descriptors to send with them.
 * @throws {TypeError} If a part of the value has the wrong JavaScript type,
 *   a required struct field is missing, or an unknown one is present; the
 *   message names the part, e.g. `Cannot encode params.regions[2].x: ...`.
 * @throws {RangeError} If a number is not an integer in range, or a count
 *   is over the limits.
 *
 * @example Encoding and decoding a struct
 * ```ts
 * import { decodeIpa, encodeIpa, T } from "@isola/isola";
 *
 * const Frame = T.struct({ id: T.u32, name: T.optional(T.string) });
 * const { data, fds } = encodeIpa(Frame, { id: 7, name: "ab" });
 * console.log(data); // Uint8Array(11) [ 7, 0, 0, 0, 1, 2, 0, 0, 0, 97, 98 ]
 * console.log(decodeIpa(Frame, data, [])); // { id: 7, name: "ab" }
 * console.log(fds.length); // 0
 * ```
 *
 * @example A value out of range
 * ```ts
 * import { encodeIpa, T } from "@isola/isola";
 *
 * const Params = T.struct({ regions: T.array(T.struct({ x: T.u16 })) });
 * try {
 *   encodeIpa(Params, { regions: [{ x: 1 }, { x: 70000 }] }, "params");
 * } catch (e) {
 *   // Cannot encode params.regions[1].x: 70000 is not a u16
 *   console.log((e as RangeError).message);
 * }
 * ```
 */
export function encodeIpa(
  type: IpaType,
  value: unknown,
  path = "value",
  owner?: string,
): IpaEncoded {
  const enc = encodeIpaBorrowed(type, value, path, owner);
  // Bytes of its own for the caller (the flat encoder lends its buffer).
  if (enc.borrowed) enc.data = enc.data.slice();
  return { data: enc.data, fds: enc.fds };
}

/**
 * {@linkcode encodeIpa} for a caller inside isola that copies the bytes at
 * once (into a frame): `borrowed` says they are a view of the flat
 * encoder's scratch buffer, valid until its next use, instead of bytes of
 * their own (src/common/_bytes.ts). Not exported from mod.ts.
 */
export function encodeIpaBorrowed(
  type: IpaType,
  value: unknown,
  path = "value",
  owner?: string,
): { data: Uint8Array; fds: FdLike[]; borrowed: boolean } {
  const plan = flatPlan(type);
  if (plan !== null) {
    const flat = encodeFlat(plan, value);
    if (flat !== null) {
      return { data: flat.data, fds: flat.fds, borrowed: true };
    }
  }
  const enc = new Encoder(path, owner);
  enc.value(type, value);
  return { data: enc.result(), fds: enc.fds, borrowed: false };
}

class Decoder {
  readonly #data: Uint8Array;
  readonly #view: DataView;
  #pos = 0;
  readonly #fds: readonly OwnedFd[];
  readonly #used: Uint8Array;
  #elements = 0;
  readonly #budget: number;
  #depth = 0;
  readonly #root: string;
  readonly #owner: string | undefined;
  readonly #path: Segment[] = [];

  constructor(
    data: Uint8Array,
    fds: readonly OwnedFd[],
    root: string,
    owner?: string,
  ) {
    this.#owner = owner;
    this.#data = data;
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.#fds = fds;
    this.#used = new Uint8Array(fds.length);
    this.#budget = data.length + ELEMENT_ALLOWANCE;
    this.#root = root;
  }

  #fail(
    reason: IpaDecodeErrorReason,
    detail: string,
    offset = this.#pos,
  ): never {
    throw new IpaDecodeError(
      reason,
      formatPath(this.#root, this.#path),
      offset,
      detail,
      this.#owner,
    );
  }

  #need(n: number, what: string): number {
    const left = this.#data.length - this.#pos;
    if (n > left) {
      this.#fail("truncated", `${what} needs ${n} bytes, ${left} left`);
    }
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  #u8(what: string): number {
    return this.#data[this.#need(1, what)];
  }

  #u32(what: string): number {
    return this.#view.getUint32(this.#need(4, what), true);
  }

  // A count of elements at least `each` bytes long each, checked against
  // the element budget and the bytes left before anything is allocated.
  #count(each: number, what: string): number {
    const at = this.#pos;
    const n = this.#u32(`${what} count`);
    if (n > this.#budget - this.#elements) {
      this.#fail(
        "too-large",
        `${what} of ${n} elements exceeds the element budget (${
          this.#budget - this.#elements
        } left)`,
        at,
      );
    }
    this.#elements += n;
    const left = this.#data.length - this.#pos;
    if (n * each > left) {
      this.#fail(
        "truncated",
        `${what} of ${n} elements needs at least ${
          n * each
        } bytes, ${left} left`,
        at,
      );
    }
    return n;
  }

  #string(): string {
    const at = this.#pos;
    const n = this.#u32("string length");
    const start = this.#need(n, "string");
    try {
      return utf8.decode(this.#data.subarray(start, start + n));
    } catch {
      return this.#fail("bad-utf8", "string is not valid UTF-8", at);
    }
  }

  #bool(): boolean {
    const b = this.#u8("bool");
    if (b > 1) this.#fail("bad-bool", `bool byte is ${b}`, this.#pos - 1);
    return b === 1;
  }

  #fd(): OwnedFd {
    const at = this.#pos;
    const i = this.#u32("fd index");
    if (i >= this.#fds.length) {
      this.#fail(
        "bad-fd-index",
        `fd index ${i} but ${this.#fds.length} descriptors came`,
        at,
      );
    }
    if (this.#used[i]) this.#fail("fd-reused", `fd index ${i} used twice`, at);
    this.#used[i] = 1;
    return this.#fds[i];
  }

  #controls(): Map<number, unknown> {
    const n = this.#count(6, "control list");
    const out = new Map<number, unknown>();
    for (let i = 0; i < n; i++) {
      this.#path.push(KEYS, i);
      const at = this.#pos;
      const id = this.#u32("control id");
      if (out.has(id)) {
        this.#fail("duplicate-key", `control id ${id} twice`, at);
      }
      this.#path.pop();
      this.#path[this.#path.length - 1] = id;
      const tagAt = this.#pos;
      const tag = this.#u8("control tag");
      let v: unknown;
      switch (tag) {
        case TAG.BOOL:
          v = this.#bool();
          break;
        case TAG.F64:
          v = this.#view.getFloat64(this.#need(8, "f64"), true);
          break;
        case TAG.I64:
          v = this.#view.getBigInt64(this.#need(8, "i64"), true);
          break;
        case TAG.STRING:
          v = this.#string();
          break;
        case TAG.F64_ARRAY: {
          const m = this.#count(8, "f64 array");
          const a = new Array<number>(m);
          for (let j = 0; j < m; j++) {
            a[j] = this.#view.getFloat64(this.#need(8, "f64"), true);
          }
          v = a;
          break;
        }
        default:
          this.#fail("bad-tag", `control tag ${tag}`, tagAt);
      }
      out.set(id, v);
      this.#path.pop();
    }
    return out;
  }

  #struct(type: IpaStructType): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const fields = type.fields;
    for (const name of Object.keys(fields)) {
      this.#path.push(name);
      const v = this.value(fields[name]);
      if (v !== undefined || fields[name].kind !== "optional") {
        if (name === "__proto__") {
          Object.defineProperty(out, name, {
            value: v,
            writable: true,
            enumerable: true,
            configurable: true,
          });
        } else {
          out[name] = v;
        }
      }
      this.#path.pop();
    }
    return out;
  }

  value(type: IpaType): unknown {
    const v = this.#view;
    switch (kindOf(type)) {
      case "bool":
        return this.#bool();
      case "u8":
        return this.#u8("u8");
      case "i8":
        return v.getInt8(this.#need(1, "i8"));
      case "u16":
        return v.getUint16(this.#need(2, "u16"), true);
      case "i16":
        return v.getInt16(this.#need(2, "i16"), true);
      case "u32":
        return v.getUint32(this.#need(4, "u32"), true);
      case "i32":
        return v.getInt32(this.#need(4, "i32"), true);
      case "u64":
        return v.getBigUint64(this.#need(8, "u64"), true);
      case "i64":
        return v.getBigInt64(this.#need(8, "i64"), true);
      case "f32":
        return v.getFloat32(this.#need(4, "f32"), true);
      case "f64":
        return v.getFloat64(this.#need(8, "f64"), true);
      case "string":
        return this.#string();
      case "bytes": {
        const n = this.#u32("bytes length");
        const at = this.#need(n, "bytes");
        return this.#data.slice(at, at + n);
      }
      case "fd":
        return this.#fd();
      case "controls":
        return this.#controls();
    }
    if (++this.#depth > MAX_DEPTH) {
      this.#fail("too-deep", `types nest deeper than ${MAX_DEPTH} levels`);
    }
    let out: unknown;
    switch (type.kind) {
      case "optional": {
        const at = this.#pos;
        const b = this.#u8("optional presence byte");
        if (b > 1) this.#fail("bad-tag", `optional presence byte is ${b}`, at);
        out = b === 1 ? this.value(type.inner) : undefined;
        break;
      }
      case "array": {
        const n = this.#count(minSize(type.items), "array");
        const a: unknown[] = [];
        for (let i = 0; i < n; i++) {
          this.#path.push(i);
          a.push(this.value(type.items));
          this.#path.pop();
        }
        out = a;
        break;
      }
      case "map": {
        const n = this.#count(
          minSize(type.key) + minSize(type.value),
          "map",
        );
        const m = new Map<unknown, unknown>();
        for (let i = 0; i < n; i++) {
          this.#path.push(KEYS, i);
          const at = this.#pos;
          const k = this.value(type.key);
          if (m.has(k)) {
            this.#fail("duplicate-key", `key ${describe(k)} twice`, at);
          }
          this.#path.pop();
          this.#path[this.#path.length - 1] = VALUES;
          this.#path.push(i);
          m.set(k, this.value(type.value));
          this.#path.pop();
          this.#path.pop();
        }
        out = m;
        break;
      }
      case "struct":
        out = this.#struct(type);
        break;
      default:
        throw new TypeError(
          `Cannot decode ${
            formatPath(this.#root, this.#path)
          }: unknown IPA type kind ${JSON.stringify(kindOf(type))}`,
        );
    }
    this.#depth--;
    return out;
  }

  finish(): void {
    const left = this.#data.length - this.#pos;
    if (left > 0) this.#fail("trailing-bytes", `${left} bytes after the value`);
    const unused = this.#used.indexOf(0);
    if (unused >= 0) {
      this.#fail(
        "fd-unused",
        `descriptor ${unused} of ${this.#fds.length} is not referred to`,
      );
    }
  }
}

function closeAll(fds: unknown): void {
  if (!Array.isArray(fds)) return;
  for (const fd of fds) {
    if (!(fd instanceof OwnedFd)) continue;
    try {
      fd.close();
    } catch {
      // EBADF: somebody else closed it; it is closed either way.
    }
  }
}

/**
 * Decodes `data` as a value of `type`, taking ownership of `fds` (the
 * descriptors that came with the data): each `fd` field gets the
 * {@linkcode OwnedFd} at its index, and the value's owner must close them.
 * The input is trusted in nothing: every length is checked against the
 * bytes left before anything is allocated, each descriptor must be used
 * exactly once, no bytes may be left over, strings must be valid UTF-8.
 * Decoded values never share memory with `data`. The wire format is
 * described in `docs/ipa_wire.md`.
 *
 * @param type The type.
 * @param data The encoded bytes.
 * @param fds The descriptors that came with them; on any error all of them
 *   are closed.
 * @param path What to call the value in error messages. Default `"value"`.
 * @param owner Whose value it is, for error messages (e.g. `camera.init`).
 * @returns The value, typed as `IpaValue<typeof type>` by the caller.
 * @throws {IpaDecodeError} If `data` is not an encoding of `type`, with
 *   `reason` and `path` saying why and where.
 * @throws {TypeError} If `data` is not a `Uint8Array`, `fds` not an array
 *   of `OwnedFd`, or `type` not an IPA type.
 *
 * @example Receiving a descriptor
 * ```ts
 * import {
 *   createMemfd,
 *   decodeIpa,
 *   encodeIpa,
 *   type OwnedFd,
 *   readFd,
 *   T,
 * } from "@isola/isola";
 *
 * const Stats = T.struct({ frame: T.u32, buf: T.fd });
 * using mem = createMemfd({ data: new Uint8Array([4, 2]) });
 * const enc = encodeIpa(Stats, { frame: 1, buf: mem });
 * // As if received: the receiver gets its own descriptors.
 * const got = decodeIpa(Stats, enc.data, [mem.dup()]) as {
 *   frame: number;
 *   buf: OwnedFd;
 * };
 * using buf = got.buf;
 * console.log(readFd(buf)); // Uint8Array(2) [ 4, 2 ]
 * ```
 */
export function decodeIpa(
  type: IpaType,
  data: Uint8Array,
  fds: OwnedFd[],
  path = "value",
  owner?: string,
): unknown {
  try {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot decode ${path}: data is ${describe(data)}, not a Uint8Array`,
      );
    }
    if (
      !Array.isArray(fds) ||
      (fds.length !== 0 && !fds.every((fd) => fd instanceof OwnedFd))
    ) {
      throw new TypeError(
        `Cannot decode ${path}: fds must be an array of OwnedFd`,
      );
    }
    const plan = flatPlan(type);
    if (plan !== null) {
      const flat = decodeFlat(plan, data, fds);
      if (flat !== null) return flat;
    }
    const dec = new Decoder(data, fds, path, owner);
    const value = dec.value(type);
    dec.finish();
    return value;
  } catch (e) {
    closeAll(fds);
    throw e;
  }
}
