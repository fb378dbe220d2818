import { assertEquals, assertThrows } from "@std/assert";
import { mapCode } from "../../ffi/spawn.ts";

const X86 = Deno.build.arch === "x86_64";

Deno.test({
  name: "`mapCode()` maps a stub that runs, and refuses one larger than a page",
  ignore: !X86,
  fn() {
    // Stub pages live as long as the process (isola never unmaps its
    // stubs); mov eax, 42; ret
    const page = mapCode(new Uint8Array([0xb8, 42, 0, 0, 0, 0xc3]));
    if (typeof page === "number") throw new Error(`mapCode: ${page}`);
    const fn = new Deno.UnsafeFnPointer(
      page as Deno.PointerObject<{ parameters: []; result: "i32" }>,
      { parameters: [], result: "i32" },
    );
    assertEquals(fn.call(), 42);
    // Only the code page is executable; the one after it stays writable.
    const withStack = mapCode(new Uint8Array([0xc3]), 1);
    if (typeof withStack === "number") throw new Error(`mapCode: ${withStack}`);
    const stack = new Uint8Array(
      Deno.UnsafePointerView.getArrayBuffer(withStack, 2 * 4096),
    ).subarray(4096);
    stack[0] = 7;
    assertEquals(stack[0], 7);
    assertThrows(() => mapCode(new Uint8Array(4097)), RangeError, "page");
  },
});
