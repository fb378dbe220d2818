import {
  assert,
  assertEquals,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { createMemfd, type OwnedFd, readFd } from "../../mod.ts";
import { type IpaType, type IpaValue, T } from "../../src/ipa/ipa_schema.ts";
import {
  decodeIpa,
  encodeIpa,
  encodeIpaBorrowed,
  IpaDecodeError,
  type IpaDecodeErrorReason,
} from "../../src/ipa/ipa_serializer.ts";
import { isOpen, withoutFdLeak } from "../_helpers.ts";

const enc = new TextEncoder();

function roundTrip(type: IpaType, value: unknown): void {
  const { data, fds } = encodeIpa(type, value);
  assertEquals(fds, []);
  assertEquals(decodeIpa(type, data, []), value);
}

/** Little-endian u32 bytes. */
function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
}

/** `n` fresh descriptors standing in for received ones. */
function receivedFds(source: OwnedFd, n: number): OwnedFd[] {
  return Array.from({ length: n }, () => source.dup());
}

/** Asserts every descriptor in `fds` was closed (object and number). */
function assertAllClosed(fds: readonly OwnedFd[], numbers: readonly number[]) {
  for (const [i, fd] of fds.entries()) {
    assert(!fd.isValid, `fds[${i}] still owned`);
    assert(!isOpen(numbers[i]), `fd ${numbers[i]} still open`);
  }
}

/**
 * Decodes `data` with `nfds` fresh descriptors and asserts it fails with
 * `reason` and closes them all.
 */
function assertDecodeError(
  type: IpaType,
  data: Uint8Array | number[],
  reason: IpaDecodeErrorReason,
  nfds = 0,
): IpaDecodeError {
  using src = createMemfd();
  const fds = receivedFds(src, nfds);
  const numbers = fds.map((fd) => fd.fd);
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  const e = assertThrows(
    () => decodeIpa(type, bytes, fds, "params"),
    IpaDecodeError,
  );
  assertEquals(e.reason, reason, e.message);
  assertAllClosed(fds, numbers);
  return e;
}

const Region = T.struct({ x: T.u16, y: T.u16, w: T.u16, h: T.u16 });
const Rich = T.struct({
  flag: T.bool,
  a: T.u8,
  b: T.i8,
  c: T.u16,
  d: T.i16,
  e: T.u32,
  f: T.i32,
  g: T.u64,
  h: T.i64,
  fl: T.f32,
  db: T.f64,
  name: T.string,
  blob: T.bytes,
  regions: T.array(Region),
  gains: T.map(T.string, T.f64),
  nested: T.optional(T.struct({ deep: T.array(T.array(T.optional(T.i32))) })),
  controls: T.controls,
  stats: T.fd,
  buffers: T.array(T.fd),
  note: T.optional(T.string),
});

function richValue(stats: OwnedFd, buf: OwnedFd): IpaValue<typeof Rich> {
  return {
    flag: true,
    a: 255,
    b: -128,
    c: 65535,
    d: -32768,
    e: 0xffffffff,
    f: -0x80000000,
    g: 0xffff_ffff_ffff_ffffn,
    h: -(1n << 63n),
    fl: Math.fround(1.1),
    db: NaN,
    name: "café 🎥",
    blob: new Uint8Array([0, 1, 2, 255]),
    regions: [{ x: 1, y: 2, w: 3, h: 4 }, { x: 5, y: 6, w: 7, h: 8 }],
    gains: new Map([["red", 1.5], ["blue", -Infinity]]),
    nested: { deep: [[1, undefined, -3], []] },
    controls: new Map<number, boolean | number | bigint | string | number[]>([
      [1, true],
      [2, 0.25],
      [3, -7n],
      [4, "auto"],
      [5, [1, 2, 3]],
    ]),
    stats,
    buffers: [buf],
    note: "hi",
  };
}

Deno.test("encodeIpa() and decodeIpa() round-trip every kind", async (t) => {
  await t.step("bool and integers at their extremes", () => {
    roundTrip(T.bool, true);
    roundTrip(T.bool, false);
    for (const n of [0, 1, 127, 255]) roundTrip(T.u8, n);
    for (const n of [-128, -1, 0, 127]) roundTrip(T.i8, n);
    for (const n of [0, 0x1234, 0xffff]) roundTrip(T.u16, n);
    for (const n of [-0x8000, 0, 0x7fff]) roundTrip(T.i16, n);
    for (const n of [0, 0x12345678, 0xffffffff]) roundTrip(T.u32, n);
    for (const n of [-0x80000000, -1, 0, 0x7fffffff]) roundTrip(T.i32, n);
    for (const n of [0n, 1n, 0xffff_ffff_ffff_ffffn]) roundTrip(T.u64, n);
    for (const n of [-(1n << 63n), -1n, 0n, (1n << 63n) - 1n]) {
      roundTrip(T.i64, n);
    }
  });

  await t.step("floats including NaN, infinities and -0", () => {
    for (
      const n of [
        0,
        -0,
        NaN,
        Infinity,
        -Infinity,
        Number.MAX_VALUE,
        Number.MIN_VALUE,
        Math.PI,
      ]
    ) {
      roundTrip(T.f64, n);
    }
    for (
      const n of [0, -0, NaN, Infinity, -Infinity, Math.fround(3.14), 2 ** -149]
    ) {
      roundTrip(T.f32, n);
    }
    // f32 rounds like Math.fround.
    const { data } = encodeIpa(T.f32, 0.1);
    assertEquals(decodeIpa(T.f32, data, []), Math.fround(0.1));
  });

  await t.step("strings and bytes, empty and unicode", () => {
    for (
      const s of [
        "",
        "a",
        "héllo wörld",
        "🎥📷",
        "\u0000nul",
        "\uFEFFbom",
        "中文",
      ]
    ) {
      roundTrip(T.string, s);
    }
    const { data } = encodeIpa(T.string, "é");
    assertEquals(data, new Uint8Array([2, 0, 0, 0, 0xc3, 0xa9]));
    roundTrip(T.bytes, new Uint8Array());
    roundTrip(T.bytes, new Uint8Array([0, 255, 7]));
    roundTrip(T.bytes, new Uint8Array(100_000).fill(9));
  });

  await t.step("nested struct, array, map and optional", () => {
    const Type = T.struct({
      id: T.u32,
      regions: T.array(Region),
      table: T.map(T.u32, T.array(T.string)),
      byName: T.map(T.string, T.optional(T.struct({ v: T.i64 }))),
      grid: T.array(T.array(T.f64)),
      maybe: T.optional(T.array(T.optional(T.u8))),
      empty: T.struct({}),
    });
    roundTrip(Type, {
      id: 42,
      regions: [{ x: 0, y: 0, w: 640, h: 480 }, { x: 1, y: 2, w: 3, h: 4 }],
      table: new Map([[1, ["a", "b"]], [0xffffffff, []]]),
      byName: new Map([["x", { v: -1n }], ["y", undefined]]),
      grid: [[1, 2], [], [NaN]],
      maybe: [1, undefined, 3],
      empty: {},
    });
    roundTrip(Type, {
      id: 0,
      regions: [],
      table: new Map(),
      byName: new Map(),
      grid: [],
      empty: {},
    });
  });

  await t.step("values much larger than the first buffer", () => {
    const Type = T.struct({
      regions: T.array(Region),
      text: T.string,
      wide: T.array(T.u64),
      floats: T.array(T.f32),
      small: T.array(T.i8),
    });
    roundTrip(Type, {
      regions: Array.from({ length: 1000 }, (_, i) => ({
        x: i,
        y: i * 2,
        w: 65535 - i,
        h: 7,
      })),
      text: "é🎥x".repeat(5000),
      wide: Array.from({ length: 300 }, (_, i) => BigInt(i) << 50n),
      floats: Array.from({ length: 300 }, (_, i) => Math.fround(i / 7)),
      small: Array.from({ length: 300 }, (_, i) => (i % 256) - 128),
    });
  });

  await t.step("an absent optional field is left out", () => {
    const Type = T.struct({ a: T.u8, note: T.optional(T.string) });
    const { data } = encodeIpa(Type, { a: 1, note: undefined });
    assertEquals(data, new Uint8Array([1, 0]));
    const v = decodeIpa(Type, data, []) as object;
    assertEquals(Object.keys(v), ["a"]);
  });

  await t.step("control lists keep every value type and order", () => {
    roundTrip(
      T.controls,
      new Map<number, boolean | number | bigint | string | number[]>([
        [0xffffffff, false],
        [1, true],
        [2, NaN],
        [3, -(1n << 63n)],
        [4, ""],
        [5, [1.5, -Infinity]],
        [6, []],
        [0, 3],
      ]),
    );
    roundTrip(T.controls, new Map());
  });

  await t.step("a field named __proto__ stays an own property", () => {
    const Type = T.struct({ ["__proto__"]: T.u8 });
    const value = Object.defineProperty({}, "__proto__", {
      value: 5,
      enumerable: true,
      writable: true,
      configurable: true,
    });
    const { data } = encodeIpa(Type, value);
    const got = decodeIpa(Type, data, []) as object;
    assert(Object.hasOwn(got, "__proto__"));
    assertStrictEquals(Object.getPrototypeOf(got), Object.prototype);
  });

  await t.step("decoded bytes do not share memory with the input", () => {
    const Type = T.struct({ b: T.bytes, s: T.string });
    const { data } = encodeIpa(Type, { b: new Uint8Array([1, 2]), s: "x" });
    const got = decodeIpa(Type, data, []) as { b: Uint8Array };
    assert(got.b.buffer !== data.buffer);
    data[4] = 99;
    assertEquals(got.b, new Uint8Array([1, 2]));
  });

  await t.step("decodes from a view with a non-zero byte offset", () => {
    const { data } = encodeIpa(T.struct({ a: T.u32, b: T.f64 }), {
      a: 7,
      b: 0.5,
    });
    const padded = new Uint8Array(data.length + 3);
    padded.set(data, 3);
    assertEquals(
      decodeIpa(T.struct({ a: T.u32, b: T.f64 }), padded.subarray(3), []),
      { a: 7, b: 0.5 },
    );
  });
});

Deno.test("encodeIpa() appends descriptors without duplicating or closing them", async () => {
  await withoutFdLeak(() => {
    using a = createMemfd({ data: enc.encode("alpha") });
    using b = createMemfd({ data: enc.encode("beta") });
    const Type = T.struct({
      first: T.fd,
      rest: T.array(T.fd),
      raw: T.optional(T.fd),
    });
    const out = encodeIpa(Type, { first: a, rest: [b, a], raw: b.fd });
    assertEquals(out.fds.length, 4);
    assertStrictEquals(out.fds[0], a);
    assertStrictEquals(out.fds[1], b);
    assertStrictEquals(out.fds[2], a);
    assertStrictEquals(out.fds[3], b.fd);
    assert(a.isValid && b.isValid);
    assertEquals(
      out.data,
      new Uint8Array([
        ...u32(0),
        ...u32(2),
        ...u32(1),
        ...u32(2),
        1,
        ...u32(3),
      ]),
    );
  });
});

Deno.test("decodeIpa() hands each fd field the descriptor at its index", async () => {
  await withoutFdLeak(() => {
    using a = createMemfd({ data: enc.encode("alpha") });
    using b = createMemfd({ data: enc.encode("beta") });
    const Type = T.struct({ first: T.fd, rest: T.array(T.fd) });
    const out = encodeIpa(Type, { first: b, rest: [a] });
    // Received descriptors: new numbers for the same files.
    const received = out.fds.map((fd) => (fd as OwnedFd).dup());
    const got = decodeIpa(Type, out.data, received) as IpaValue<typeof Type>;
    assertStrictEquals(got.first, received[0]);
    assertStrictEquals(got.rest[0], received[1]);
    assertEquals(new TextDecoder().decode(readFd(got.first)), "beta");
    assertEquals(new TextDecoder().decode(readFd(got.rest[0])), "alpha");
    for (const fd of received) fd.close();
  });
});

Deno.test("encodeIpa() throws naming the path when the value does not fit the type", async (t) => {
  const Params = T.struct({ regions: T.array(Region) });
  const region = { x: 0, y: 0, w: 1, h: 1 };

  function throwsWith(
    type: IpaType,
    value: unknown,
    Err: typeof TypeError | typeof RangeError,
    text: string,
  ): void {
    const e = assertThrows(() => encodeIpa(type, value, "params"), Err);
    assertStringIncludes(e.message, text);
  }

  await t.step("an integer out of range is a RangeError", () => {
    throwsWith(
      Params,
      { regions: [region, region, { ...region, x: 70000 }] },
      RangeError,
      "Cannot encode params.regions[2].x: 70000 is not a u16",
    );
    throwsWith(T.u8, 256, RangeError, "params: 256 is not a u8");
    throwsWith(T.u8, -1, RangeError, "-1 is not a u8");
    throwsWith(T.i8, 128, RangeError, "128 is not an i8");
    throwsWith(T.i16, -32769, RangeError, "-32769 is not an i16");
    throwsWith(T.u32, 2 ** 32, RangeError, "4294967296 is not a u32");
    throwsWith(T.i32, 2 ** 31, RangeError, "2147483648 is not an i32");
    throwsWith(T.u64, 1n << 64n, RangeError, "18446744073709551616n");
    throwsWith(T.u64, -1n, RangeError, "-1n is not a u64");
    throwsWith(T.i64, -(1n << 63n) - 1n, RangeError, "is not an i64");
    throwsWith(T.i64, 1n << 63n, RangeError, "is not an i64");
  });

  await t.step("a non-integer is a RangeError", () => {
    throwsWith(T.u16, 1.5, RangeError, "1.5 is not a u16");
    throwsWith(T.i32, NaN, RangeError, "NaN is not an i32");
    throwsWith(T.u32, Infinity, RangeError, "Infinity is not a u32");
  });

  await t.step("a value of the wrong JavaScript type is a TypeError", () => {
    throwsWith(T.u8, "3", TypeError, '"3" is not a u8');
    throwsWith(T.u32, 3n, TypeError, "3n is not a u32");
    throwsWith(T.u64, 3, TypeError, "3 is not a u64");
    throwsWith(T.i64, 3, TypeError, "3 is not an i64");
    throwsWith(T.bool, 1, TypeError, "1 is not a bool");
    throwsWith(T.f64, 1n, TypeError, "1n is not an f64");
    throwsWith(T.f32, "1", TypeError, "is not an f32");
    throwsWith(T.string, 1, TypeError, "1 is not a string");
    throwsWith(T.bytes, [1, 2], TypeError, "an array is not a Uint8Array");
    throwsWith(T.array(T.u8), new Uint8Array(1), TypeError, "is not an array");
    throwsWith(T.map(T.u8, T.u8), {}, TypeError, "an object is not a Map");
    throwsWith(T.struct({}), null, TypeError, "null is not a struct");
    throwsWith(T.struct({}), [], TypeError, "an array is not a struct");
    throwsWith(T.optional(T.u8), null, TypeError, "null is not a u8");
  });

  await t.step("a string with a lone surrogate is a TypeError", () => {
    throwsWith(T.string, "a\uD800b", TypeError, "lone surrogate");
  });

  await t.step("a missing required field is a TypeError", () => {
    throwsWith(
      Params,
      { regions: [{ x: 1, y: 2, w: 3 }] },
      TypeError,
      "Cannot encode params.regions[0].h: missing required field",
    );
    throwsWith(
      T.struct({ a: T.u8 }),
      { a: undefined },
      TypeError,
      "params.a: missing",
    );
  });

  await t.step("an unknown field is a TypeError (typos)", () => {
    throwsWith(
      T.struct({ note: T.optional(T.string) }),
      { notee: "x" },
      TypeError,
      'Cannot encode params: unknown field "notee" (fields: note)',
    );
  });

  await t.step("bad map keys and values name their entry", () => {
    const M = T.map(T.string, T.u8);
    throwsWith(
      M,
      new Map([[1, 1]]),
      TypeError,
      "params.keys[0]: 1 is not a string",
    );
    throwsWith(
      M,
      new Map([["a", 1], ["b", 300]]),
      RangeError,
      "params.values[1]: 300 is not a u8",
    );
  });

  await t.step("bad control lists are rejected", () => {
    throwsWith(T.controls, {}, TypeError, "is not a Map (control list)");
    throwsWith(
      T.controls,
      new Map([["1", true]]),
      TypeError,
      'params.keys[0]: control id "1" is not a u32',
    );
    throwsWith(
      T.controls,
      new Map([[1, true], [-1, true]]),
      RangeError,
      "params.keys[1]: control id -1 is not a u32",
    );
    throwsWith(
      T.controls,
      new Map([[7, { a: 1 }]]),
      TypeError,
      "params[7]: an object is not a control value",
    );
    throwsWith(
      T.controls,
      new Map([[7, [1, "2"]]]),
      TypeError,
      'params[7][1]: "2" is not a number',
    );
    throwsWith(
      T.controls,
      new Map([[7, 1n << 63n]]),
      RangeError,
      "params[7]: 9223372036854775808n is not an i64",
    );
  });

  await t.step("bad descriptors are rejected", () => {
    const fd = createMemfd();
    fd.close();
    throwsWith(T.fd, fd, TypeError, "already closed or released");
    throwsWith(T.fd, -1, RangeError, "-1 is not a file descriptor");
    throwsWith(T.fd, 1.5, RangeError, "1.5 is not a file descriptor");
    throwsWith(T.fd, "3", TypeError, "is not an OwnedFd or a number");
  });

  await t.step("types nesting deeper than 64 levels are a RangeError", () => {
    let deep: IpaType = T.u8;
    for (let i = 0; i < 65; i++) deep = T.optional(deep);
    throwsWith(deep, 1, RangeError, "deeper than 64");
    let ok: IpaType = T.u8;
    for (let i = 0; i < 64; i++) ok = T.optional(ok);
    assertEquals(decodeIpa(ok, encodeIpa(ok, 1).data, []), 1);
  });

  await t.step("an unknown type kind is a TypeError", () => {
    throwsWith({ kind: "u128" } as unknown as IpaType, 1, TypeError, '"u128"');
  });
});

Deno.test("decodeIpa() throws IpaDecodeError and closes every descriptor", async (t) => {
  using src = createMemfd({ data: enc.encode("stats") });

  await t.step("when the data is cut at any byte offset", async () => {
    await withoutFdLeak(() => {
      using buf = createMemfd();
      const { data, fds } = encodeIpa(Rich, richValue(src, buf));
      assertEquals(fds.length, 2);
      // The whole encoding decodes...
      const whole = receivedFds(src, 2);
      const v = decodeIpa(Rich, data, whole) as IpaValue<typeof Rich>;
      assertEquals(v.name, "café 🎥");
      for (const fd of whole) fd.close();
      // ...and every proper prefix is rejected.
      for (let n = 0; n < data.length; n++) {
        const e = assertDecodeError(Rich, data.subarray(0, n), "truncated", 2);
        assert(e.offset <= n, `offset ${e.offset} past ${n}`);
      }
    });
  });

  await t.step("when bytes follow the value", () => {
    const e = assertDecodeError(T.u16, [1, 0, 0], "trailing-bytes");
    assertEquals(e.offset, 2);
    assertEquals(e.path, "params");
  });

  await t.step("when an fd index is out of range", () => {
    assertDecodeError(T.fd, u32(0), "bad-fd-index");
    assertDecodeError(T.fd, u32(1), "bad-fd-index", 1);
    assertDecodeError(T.fd, u32(0xffffffff), "bad-fd-index", 3);
  });

  await t.step("when an fd index is used twice", () => {
    const e = assertDecodeError(
      T.struct({ a: T.fd, b: T.fd }),
      [...u32(0), ...u32(0)],
      "fd-reused",
      2,
    );
    assertEquals(e.path, "params.b");
  });

  await t.step("when a descriptor is not used", () => {
    assertDecodeError(T.u32, u32(5), "fd-unused", 1);
    assertDecodeError(T.fd, u32(1), "fd-unused", 2);
  });

  await t.step("when a bool byte is not 0 or 1", () => {
    const e = assertDecodeError(
      T.struct({ ok: T.array(T.bool) }),
      [...u32(2), 1, 2],
      "bad-bool",
    );
    assertEquals(e.path, "params.ok[1]");
    assertEquals(e.offset, 5);
    assertDecodeError(T.controls, [...u32(1), ...u32(9), 1, 255], "bad-bool");
  });

  await t.step("when a tag is unknown", () => {
    assertDecodeError(T.optional(T.u8), [2, 0], "bad-tag");
    const e = assertDecodeError(
      T.controls,
      [...u32(1), ...u32(9), 0, 0, 0, 0, 0, 0, 0, 0, 0],
      "bad-tag",
    );
    assertEquals(e.path, "params[9]");
    assertDecodeError(T.controls, [...u32(1), ...u32(9), 6, 0], "bad-tag");
  });

  await t.step("when a count is absurd, without allocating for it", () => {
    const start = performance.now();
    const huge = [...u32(0xffffffff), 0, 0, 0, 0];
    assertDecodeError(T.array(T.u32), huge, "too-large");
    assertDecodeError(T.array(T.struct({})), huge, "too-large");
    assertDecodeError(T.array(T.optional(T.struct({}))), huge, "too-large");
    assertDecodeError(T.map(T.u8, T.u8), huge, "too-large");
    assertDecodeError(T.controls, huge, "too-large");
    assertDecodeError(
      T.controls,
      [...u32(1), ...u32(1), 5, ...u32(0xffffffff)],
      "too-large",
    );
    // Within the element budget but more than the bytes left can hold.
    assertDecodeError(T.array(T.u32), [...u32(100), 0, 0, 0, 0], "truncated");
    assertDecodeError(T.array(T.string), [...u32(2), 0, 0, 0, 0], "truncated");
    assertDecodeError(T.bytes, huge, "truncated");
    assertDecodeError(T.string, huge, "truncated");
    assert(performance.now() - start < 1000);
  });

  await t.step("when zero-size elements exceed the element budget", () => {
    const Empty = T.array(T.struct({}));
    // Budget: 4 bytes of message + 65,536.
    const ok = decodeIpa(Empty, new Uint8Array(u32(65_540)), []) as unknown[];
    assertEquals(ok.length, 65_540);
    assertEquals(encodeIpa(Empty, ok).data, new Uint8Array(u32(65_540)));
    assertDecodeError(Empty, u32(65_541), "too-large");
    assertThrows(
      () => encodeIpa(Empty, [...ok, {}]),
      RangeError,
      "element budget",
    );
  });

  await t.step("when a string is not UTF-8", () => {
    for (
      const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0x80]]
    ) {
      const e = assertDecodeError(
        T.struct({ s: T.string }),
        [...u32(bad.length), ...bad],
        "bad-utf8",
      );
      assertEquals(e.path, "params.s");
    }
    assertDecodeError(
      T.controls,
      [...u32(1), ...u32(3), 4, ...u32(1), 0xff],
      "bad-utf8",
    );
  });

  await t.step("when a map key or control id repeats", () => {
    const e = assertDecodeError(
      T.map(T.u8, T.u8),
      [...u32(2), 1, 10, 1, 11],
      "duplicate-key",
    );
    assertEquals(e.path, "params.keys[1]");
    assertDecodeError(
      T.controls,
      [...u32(2), ...u32(3), 1, 1, ...u32(3), 1, 0],
      "duplicate-key",
    );
  });

  await t.step("when the type nests deeper than 64 levels", () => {
    let deep: IpaType = T.u8;
    for (let i = 0; i < 65; i++) deep = T.optional(deep);
    assertDecodeError(deep, new Array(66).fill(1), "too-deep", 1);
  });

  await t.step("when the arguments are wrong (a TypeError)", () => {
    const fds = receivedFds(src, 2);
    const numbers = fds.map((fd) => fd.fd);
    assertThrows(
      () => decodeIpa(T.u8, [1] as unknown as Uint8Array, fds),
      TypeError,
    );
    assertAllClosed(fds, numbers);
    const more = receivedFds(src, 1);
    const n = more[0].fd;
    assertThrows(
      () =>
        decodeIpa(
          { kind: "nope" } as unknown as IpaType,
          new Uint8Array(),
          more,
        ),
      TypeError,
    );
    assertAllClosed(more, [n]);
  });

  await t.step("names the path where the data went wrong", () => {
    const Params = T.struct({ id: T.u32, crop: Region, all: T.array(Region) });
    const { data } = encodeIpa(Params, {
      id: 1,
      crop: { x: 1, y: 2, w: 3, h: 4 },
      all: [{ x: 1, y: 2, w: 3, h: 4 }, { x: 1, y: 2, w: 3, h: 4 }],
    });
    // Cut inside crop.y.
    let e = assertDecodeError(Params, data.subarray(0, 7), "truncated");
    assertEquals(e.path, "params.crop.y");
    assertEquals(e.offset, 6);
    assertStringIncludes(e.message, "Cannot decode params.crop.y:");
    // Cut inside all[1]: the count already claims more than is left.
    e = assertDecodeError(Params, data.subarray(0, 30), "truncated");
    assertEquals(e.path, "params.all");
    assertEquals(e.offset, 12);
  });
});

/** xorshift32: a small deterministic PRNG. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

Deno.test("decodeIpa() survives 20,000 mutated encodings without other errors or fd leaks", async () => {
  await withoutFdLeak(() => {
    using src = createMemfd({ data: enc.encode("stats") });
    using buf = createMemfd();
    const { data } = encodeIpa(Rich, richValue(src, buf));
    const rand = prng(0x15014);
    const int = (n: number) => Math.floor(rand() * n);
    const interesting = [
      0,
      1,
      2,
      0x7f,
      0x80,
      0xff,
      0xffff,
      0x7fffffff,
      0xffffffff,
    ];
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      let bytes = data.slice();
      const mutations = 1 + int(3);
      for (let m = 0; m < mutations; m++) {
        switch (int(6)) {
          case 0: // flip a byte
            if (bytes.length > 0) bytes[int(bytes.length)] = int(256);
            break;
          case 1: // truncate
            bytes = bytes.slice(0, int(bytes.length + 1));
            break;
          case 2: { // an interesting u32 somewhere
            if (bytes.length < 4) break;
            const at = int(bytes.length - 3);
            new DataView(bytes.buffer).setUint32(
              at,
              interesting[int(interesting.length)],
              true,
            );
            break;
          }
          case 3: { // insert random bytes
            const at = int(bytes.length + 1);
            const extra = Array.from({ length: 1 + int(8) }, () => int(256));
            bytes = new Uint8Array([
              ...bytes.subarray(0, at),
              ...extra,
              ...bytes.subarray(at),
            ]);
            break;
          }
          case 4: { // delete a range
            const at = int(bytes.length + 1);
            const n = 1 + int(8);
            bytes = new Uint8Array([
              ...bytes.subarray(0, at),
              ...bytes.subarray(at + n),
            ]);
            break;
          }
          case 5: // flip one bit
            if (bytes.length > 0) bytes[int(bytes.length)] ^= 1 << int(8);
            break;
        }
      }
      const nfds = int(5) === 0 ? int(4) : 2;
      const fds = receivedFds(src, nfds);
      const numbers = fds.map((fd) => fd.fd);
      try {
        const v = decodeIpa(Rich, bytes, fds);
        assert(typeof v === "object" && v !== null);
        outcomes.set("ok", (outcomes.get("ok") ?? 0) + 1);
        // Every descriptor went into the value; its owner closes them.
        for (const fd of fds) {
          assert(fd.isValid);
          fd.close();
        }
      } catch (e) {
        if (!(e instanceof IpaDecodeError)) {
          throw new Error(
            `iteration ${i}: ${e} for ${Array.from(bytes)} with ${nfds} fds`,
          );
        }
        outcomes.set(e.reason, (outcomes.get(e.reason) ?? 0) + 1);
        assertAllClosed(fds, numbers);
      }
    }
    // The fuzz reached the interesting places.
    for (
      const r of ["ok", "truncated", "trailing-bytes", "too-large", "bad-tag"]
    ) {
      assert((outcomes.get(r) ?? 0) > 0, `no ${r} in ${[...outcomes]}`);
    }
  });
});

Deno.test("encodeIpa() and decodeIpa() name the value's owner in their errors when given", () => {
  const Params = T.struct({ a: T.i32 });
  const e = assertThrows(
    () => encodeIpa(Params, { a: "1" }, "params", "Echo.ping"),
    TypeError,
  );
  assertEquals(
    e.message,
    'Cannot encode params.a of Echo.ping: "1" is not an i32',
  );
  const d = assertThrows(
    () => decodeIpa(Params, new Uint8Array(2), [], "params", "Echo.ping"),
    IpaDecodeError,
  );
  assertEquals(d.path, "params.a");
  assert(
    d.message.startsWith("Cannot decode params.a of Echo.ping: "),
    d.message,
  );
});

Deno.test("`encodeIpa()` gives bytes of their own; `encodeIpaBorrowed()` lends the flat encoder's buffer and says so", () => {
  const Frame = T.struct({ frame: T.u32, stats: T.bytes });
  const first = encodeIpa(Frame, { frame: 1, stats: new Uint8Array([1, 2]) });
  const second = encodeIpa(Frame, { frame: 2, stats: new Uint8Array([3, 4]) });
  assertEquals([...first.data], [...u32(1), ...u32(2), 1, 2]);
  assertEquals([...second.data], [...u32(2), ...u32(2), 3, 4]);
  assert(first.data.buffer !== second.data.buffer);

  const lent = encodeIpaBorrowed(Frame, { frame: 5, stats: new Uint8Array(2) });
  assert(lent.borrowed, "a flat struct: the scratch buffer's view");
  const again = encodeIpaBorrowed(Frame, {
    frame: 6,
    stats: new Uint8Array(2),
  });
  assertEquals(lent.data.buffer, again.data.buffer);
  assertEquals(lent.data[0], 6, "a borrowed view shows the last encoding");
  // Not a flat struct: the general encoder's bytes, its own.
  const Nested = T.struct({ inner: T.struct({ x: T.u8 }) });
  const own = encodeIpaBorrowed(Nested, { inner: { x: 1 } });
  assert(!own.borrowed);
  assertEquals([...own.data], [1]);
});
