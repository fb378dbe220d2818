import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { checkTimeout, settleWithin } from "../../src/common/_timeout.ts";

Deno.test("`checkTimeout()` gives the fallback for undefined and refuses negative or NaN timeouts", () => {
  assertEquals(checkTimeout(undefined, 5), 5);
  assertEquals(checkTimeout(0, 5), 0);
  assertEquals(checkTimeout(Infinity, 5), Infinity);
  assertThrows(() => checkTimeout(-1, 5), RangeError, "Invalid timeout: -1");
  assertThrows(() => checkTimeout(NaN, 5), RangeError, "Invalid timeout");
});

Deno.test("`settleWithin()` gives the value of a Promise that settles in time, null after the wait, and leaves no timer", async () => {
  assertEquals(await settleWithin(Promise.resolve(7), 60_000), 7);
  assertEquals(await settleWithin(new Promise(() => {}), 5), null);
  assertEquals(await settleWithin(Promise.resolve("x"), Infinity), "x");
  await assertRejects(
    () => settleWithin(Promise.reject(new TypeError("no")), 60_000),
    TypeError,
    "no",
  );
  // Deno's sanitizer fails this test if a 60 s timer were left running.
});
