// A sync method, and an async call answered by an event, through each IPA
// proxy, against a direct in-process call of the same implementation (the
// baseline of each group). Run with `deno task bench`.
import { IpaProxyIsolated, IpaProxyThread } from "../mod.ts";
import { TestIpa } from "../tests/fixtures/ipa_test_iface.ts";
import * as testModule from "../tests/fixtures/ipa_test_module.ts";

const MODULE = new URL("../tests/fixtures/ipa_test_module.ts", import.meta.url);

let directEvents = 0;
const direct = testModule.createIpa({
  emit: () => {
    directEvents++;
  },
});
const thread = await IpaProxyThread.create(TestIpa, MODULE);
const isolated = await IpaProxyIsolated.create(TestIpa, MODULE);
thread.start();
isolated.start();

function nextEvent(ipa: typeof thread): Promise<void> {
  return new Promise((resolve) => {
    const off = ipa.on("poked", () => {
      off();
      resolve();
    });
  });
}

Deno.bench({
  name: "direct call",
  group: "sync method (init)",
  baseline: true,
  fn() {
    direct.init({ name: "bench" });
  },
});
Deno.bench({
  name: "IpaProxyThread",
  group: "sync method (init)",
  fn() {
    thread.init({ name: "bench" });
  },
});
Deno.bench({
  name: "IpaProxyIsolated",
  group: "sync method (init)",
  fn() {
    isolated.init({ name: "bench" });
  },
});

Deno.bench({
  name: "direct call",
  group: "async call + event",
  baseline: true,
  fn() {
    direct.poke({ n: 1 });
  },
});
Deno.bench({
  name: "IpaProxyThread",
  group: "async call + event",
  async fn() {
    const ev = nextEvent(thread);
    thread.poke({ n: 1 });
    await ev;
  },
});
Deno.bench({
  name: "IpaProxyIsolated",
  group: "async call + event",
  async fn() {
    const ev = nextEvent(isolated);
    isolated.poke({ n: 1 });
    await ev;
  },
});

globalThis.addEventListener("unload", () => {
  if (directEvents < 0) console.log(directEvents);
});
