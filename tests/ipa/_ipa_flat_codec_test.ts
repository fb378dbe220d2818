import {
  assertEquals,
  assertNotEquals,
  assertNotStrictEquals,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  createMemfd,
  decodeIpa,
  encodeIpa,
  IpaDecodeError,
  type OwnedFd,
  T,
} from "../../mod.ts";
import {
  decodeFlat,
  flatPlan,
  prepareSpares,
  SPARE_MAX,
  sparesWanted,
} from "../../src/ipa/_ipa_flat_codec.ts";

const Flat = T.struct({
  b: T.bool,
  u8: T.u8,
  i8: T.i8,
  u16: T.u16,
  i16: T.i16,
  u32: T.u32,
  i32: T.i32,
  f32: T.f32,
  f64: T.f64,
  u64: T.u64,
  i64: T.i64,
  s: T.string,
  bytes: T.bytes,
  maybe: T.optional(T.u32),
  note: T.optional(T.string),
});
// The same fields one level down: not flat, so the general walker encodes
// it, and a struct's encoding is its fields' in order.
const Wrapped = T.struct({ inner: Flat });

function value(i: number) {
  return {
    b: i % 2 === 0,
    u8: 255 - (i % 256),
    i8: -128 + (i % 256),
    u16: 65535 - i,
    i16: -32768 + i,
    u32: 0xffff_ffff - i,
    i32: -0x8000_0000 + i,
    f32: Math.fround(i / 7), // exact in 32 bits
    f64: -i * 1e300,
    u64: (1n << 64n) - 1n - BigInt(i),
    i64: -(1n << 63n) + BigInt(i),
    s: "é€😀".repeat(i % 4),
    bytes: new Uint8Array(i % 5).fill(i),
    ...(i % 3 === 0 ? { maybe: i } : {}),
    ...(i % 2 === 0 ? { note: undefined } : { note: `n${i}` }),
  };
}

Deno.test("the flat codec writes the general walker's bytes and reads them back", () => {
  assertNotEquals(flatPlan(Flat), null);
  assertEquals(flatPlan(Wrapped), null);
  for (let i = 0; i < 200; i++) {
    const v = value(i);
    const flat = encodeIpa(Flat, v);
    const general = encodeIpa(Wrapped, { inner: v });
    assertEquals(flat.data, general.data);
    const expect = { ...v } as Record<string, unknown>;
    if (expect.note === undefined) delete expect.note;
    assertEquals(decodeIpa(Flat, flat.data, []), expect);
    assertEquals(
      (decodeIpa(Wrapped, general.data, []) as { inner: unknown }).inner,
      expect,
    );
  }
});

Deno.test("the flat codec leaves every bad value to the general walker's errors", () => {
  const good = value(1);
  const cases: [Record<string, unknown>, string][] = [
    [{ ...good, u8: 256 }, "Cannot encode params.u8: 256 is not a u8"],
    [{ ...good, i32: 1.5 }, "Cannot encode params.i32: 1.5 is not an i32"],
    [{ ...good, s: 7 }, "Cannot encode params.s: 7 is not a string"],
    [{ ...good, extra: 1 }, 'unknown field "extra"'],
    [{ ...good, u64: 1 }, "Cannot encode params.u64: 1 is not a u64"],
    [
      { ...good, b: undefined },
      "Cannot encode params.b: missing required field",
    ],
  ];
  for (const [v, message] of cases) {
    const e = assertThrows(() => encodeIpa(Flat, v, "params"));
    assertEquals((e as Error).message.includes(message), true, `${e}`);
  }
  const data = encodeIpa(Flat, good).data;
  for (
    const bad of [
      data.subarray(0, data.length - 1),
      new Uint8Array([...data, 0]),
    ]
  ) {
    assertThrows(() => decodeIpa(Flat, bad, []), IpaDecodeError);
  }
});

Deno.test("the flat codec passes descriptors in order, and leaves other orders to the general decoder", () => {
  const Fds = T.struct({ a: T.fd, n: T.u32, b: T.fd });
  using m1 = createMemfd({ data: new Uint8Array([1]) });
  using m2 = createMemfd({ data: new Uint8Array([2]) });
  const enc = encodeIpa(Fds, { a: m1, n: 5, b: m2 });
  assertEquals(enc.fds, [m1, m2]);
  const a = m1.dup();
  const b = m2.dup();
  const got = decodeIpa(Fds, enc.data, [a, b]) as { a: OwnedFd; b: OwnedFd };
  assertEquals([got.a, got.b], [a, b]);
  a.close();
  b.close();
  // Indexes swapped: valid, read by the general decoder.
  const swapped = enc.data.slice();
  const v = new DataView(swapped.buffer);
  v.setUint32(0, 1, true);
  v.setUint32(8, 0, true);
  const c = m1.dup();
  const d = m2.dup();
  const got2 = decodeIpa(Fds, swapped, [c, d]) as { a: OwnedFd; b: OwnedFd };
  assertEquals([got2.a, got2.b], [d, c]);
  c.close();
  d.close();
});

Deno.test("the flat decoder takes a spare array made ahead for a bytes field of the length it saw last, and hands each out once", () => {
  const Stats = T.struct({ frame: T.u32, stats: T.bytes, more: T.bytes });
  const plan = flatPlan(Stats)!;
  const encode = (frame: number, stats: number[], more: number[]) =>
    encodeIpa(Stats, {
      frame,
      stats: new Uint8Array(stats),
      more: new Uint8Array(more),
    }).data;
  prepareSpares(); // whatever other tests left wanting
  assertEquals(sparesWanted(), false);

  // First decoding: no spares yet; it asks for some of these lengths.
  const first = decodeFlat(plan, encode(1, [1, 2, 3], [9]), [])!;
  assertEquals(first.stats, new Uint8Array([1, 2, 3]));
  assertEquals(sparesWanted(), true);
  prepareSpares();
  assertEquals(sparesWanted(), false);
  const [spareStats, spareMore] = [plan.spares[1]!, plan.spares[2]!];
  assertEquals([spareStats.length, spareMore.length], [3, 1]);

  // Same lengths: the decoder fills and hands over the spares.
  const second = decodeFlat(plan, encode(2, [4, 5, 6], [8]), [])!;
  assertStrictEquals(second.stats, spareStats);
  assertStrictEquals(second.more, spareMore);
  assertEquals(second.stats, new Uint8Array([4, 5, 6]));
  assertEquals(second.more, new Uint8Array([8]));
  assertEquals([plan.spares[1], plan.spares[2]], [undefined, undefined]);
  // Nothing made ahead now: the next decoding copies into arrays of its
  // own, and never into the ones handed out.
  const third = decodeFlat(plan, encode(3, [7, 7, 7], [7]), [])!;
  assertEquals(second.stats, new Uint8Array([4, 5, 6]));
  assertNotStrictEquals(third.stats, second.stats);

  // Another length: the spare is not used, and the next one has the new
  // length.
  prepareSpares();
  const fourth = decodeFlat(plan, encode(4, [1, 2, 3, 4], [5]), [])!;
  assertEquals(fourth.stats, new Uint8Array([1, 2, 3, 4]));
  assertEquals((fourth.stats as Uint8Array).buffer.byteLength, 4);
  prepareSpares();
  assertEquals(plan.spares[1]!.length, 4);
  // Longer than SPARE_MAX: never made ahead.
  decodeFlat(plan, encode(5, new Array(SPARE_MAX + 1).fill(1), [5]), []);
  prepareSpares();
  assertEquals(plan.spares[1], undefined);
});
