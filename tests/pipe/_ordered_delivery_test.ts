import { assertEquals } from "@std/assert";
import { OrderedDelivery } from "../../src/pipe/_ordered_delivery.ts";

Deno.test("`OrderedDelivery` delivers by sequence number whatever the order items come in, skipping gaps", () => {
  const out: string[] = [];
  const d = new OrderedDelivery<string>((s) => out.push(s));
  d.hold(2, "c");
  d.hold(1, null); // a reply a sync call already returned
  d.flush();
  assertEquals(out, []); // 0 is missing: nothing may overtake it
  assertEquals(d.ready, false);
  d.hold(0, "a");
  assertEquals(d.ready, true);
  d.flush();
  assertEquals(out, ["a", "c"]);
  assertEquals(d.size, 0);
  d.hold(4, "e");
  d.hold(3, "d");
  d.flush();
  assertEquals(out, ["a", "c", "d", "e"]);
});

Deno.test("`OrderedDelivery.flush()` from inside a delivery does not reorder or deliver twice", () => {
  const out: number[] = [];
  const d: OrderedDelivery<number> = new OrderedDelivery<number>((n) => {
    out.push(n);
    if (n === 0) {
      d.hold(2, 2); // arrives while 0 is being delivered
      d.flush(); // returns at once; the running flush goes on
    }
  });
  d.hold(1, 1);
  d.hold(0, 0);
  d.flush();
  assertEquals(out, [0, 1, 2]);
});

Deno.test("`OrderedDelivery.clear()` hands every held item to `drop`, gaps excepted", () => {
  const dropped: string[] = [];
  const d = new OrderedDelivery<string>(() => {
    throw new Error("nothing is delivered");
  });
  d.hold(1, "b");
  d.hold(2, null);
  d.hold(3, "d");
  d.clear((s) => dropped.push(s));
  assertEquals(dropped.sort(), ["b", "d"]);
  assertEquals(d.size, 0);
});
