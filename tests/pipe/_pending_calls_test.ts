import { assertEquals, assertInstanceOf, assertRejects } from "@std/assert";
import { IpcMessage, IpcTimeoutError } from "../../mod.ts";
import { PendingCalls } from "../../src/pipe/_pending_calls.ts";
import { within } from "../_helpers.ts";

const timeoutError = () => new IpcTimeoutError("no reply", 10);

Deno.test("`PendingCalls.take()` settles a call once: the reply resolves it, a second take finds nothing", async () => {
  const calls = new PendingCalls();
  const p = calls.add(7, 3, { timeout: Infinity, onTimeout: timeoutError });
  assertEquals(calls.size, 1);
  const call = calls.take(7)!;
  assertEquals(call.cmd, 3);
  call.resolve(new IpcMessage({ cmd: 3 }, 7));
  assertEquals((await p).cookie, 7);
  assertEquals(calls.take(7), undefined);
  assertEquals(calls.has(7), false);
});

Deno.test("`PendingCalls` fails a call at its deadline and forgets it (its reply would be late)", async () => {
  const calls = new PendingCalls();
  const p = calls.add(1, 9, { timeout: 5, onTimeout: timeoutError });
  await assertRejects(() => within(p, 5000, "deadline"), IpcTimeoutError);
  assertEquals(calls.size, 0);
  assertEquals(calls.take(1), undefined);
});

Deno.test("`PendingCalls` fails a call with its AbortSignal's reason and removes its listener", async () => {
  const calls = new PendingCalls();
  const ac = new AbortController();
  const p = calls.add(2, 1, {
    timeout: Infinity,
    signal: ac.signal,
    onTimeout: timeoutError,
  });
  ac.abort(new RangeError("stop"));
  await assertRejects(() => p, RangeError, "stop");
  assertEquals(calls.size, 0);
  // A reply after the abort: nothing to settle; a later abort does nothing.
  const again = new AbortController();
  const q = calls.add(3, 1, {
    timeout: Infinity,
    signal: again.signal,
    onTimeout: timeoutError,
  });
  calls.take(3)!.resolve(new IpcMessage({}, 3));
  again.abort();
  assertEquals((await q).cookie, 3);
});

Deno.test("`PendingCalls.failAll()` fails every call with an error naming its command, and stops their timers", async () => {
  const calls = new PendingCalls();
  const ps = [4, 5, 6].map((cmd, i) =>
    calls.add(i + 1, cmd, { timeout: 60_000, onTimeout: timeoutError })
  );
  calls.failAll((call) => new Error(`Cannot call ${call.cmd}`));
  assertEquals(calls.size, 0);
  const errors = await Promise.all(ps.map((p) => p.catch((e) => e)));
  errors.forEach((e) => assertInstanceOf(e, Error));
  assertEquals(errors.map((e) => e.message), [
    "Cannot call 4",
    "Cannot call 5",
    "Cannot call 6",
  ]);
});
