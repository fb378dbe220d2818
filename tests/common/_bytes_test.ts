import { assert, assertEquals } from "@std/assert";
import { copyBytes, ViewCache } from "../../src/common/_bytes.ts";

Deno.test("`copyBytes()` copies small arrays (a loop) and large ones (set) at an offset", () => {
  for (const n of [0, 1, 64, 256, 257, 5000]) {
    const src = Uint8Array.from({ length: n }, (_, i) => (i * 7 + 1) & 0xff);
    const dst = new Uint8Array(n + 10).fill(0xee);
    copyBytes(dst, 3, src);
    assertEquals(dst.subarray(3, 3 + n), src, `n = ${n}`);
    assertEquals([...dst.subarray(0, 3)], [0xee, 0xee, 0xee], `n = ${n}`);
    assert(dst.subarray(3 + n).every((b) => b === 0xee), `n = ${n}`);
  }
});

Deno.test("`ViewCache` lends one view per region, showing the buffer as it is now", () => {
  const buf = new Uint8Array(8192);
  const views = new ViewCache(buf);
  const a = views.view(16, 80);
  assertEquals([a.byteOffset, a.length], [16, 64]);
  assert(a.buffer === buf.buffer, "a view, not a copy");
  assert(views.view(16, 80) === a, "the same region: the same view");
  buf[16] = 42;
  assertEquals(a[0], 42);
  // Another start with the same length replaces the kept view.
  const b = views.view(8, 72);
  assertEquals(b.byteOffset, 8);
  assert(views.view(8, 72) === b);
  assert(views.view(16, 80) !== a);
  // Long regions are not kept, but still viewed.
  const long = views.view(0, 5000);
  assertEquals(long.length, 5000);
  assert(long.buffer === buf.buffer);
  assert(views.view(0, 5000) !== long);
});

Deno.test("`ViewCache` views start at the region of a buffer that is itself a view", () => {
  const whole = new Uint8Array(100).map((_, i) => i);
  const views = new ViewCache(whole.subarray(10, 90));
  assertEquals([...views.view(2, 5)], [12, 13, 14]);
  assertEquals([...views.view(2, 5)], [12, 13, 14]);
  assertEquals([...views.view(3, 6)], [13, 14, 15]);
});
