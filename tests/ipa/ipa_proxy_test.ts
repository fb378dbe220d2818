// One behavioural suite, run against both proxies: they must pass it alike.
import {
  assert,
  assertEquals,
  assertGreater,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  createMemfd,
  type IpaCrashEvent,
  IpaModuleError,
  type IpaPlacement,
  IpaProxyIsolated,
  type IpaProxyOf,
  IpaProxyThread,
  IpcPeerGoneError,
  IpcRemoteError,
  readFd,
} from "../../mod.ts";
import { TestIpa } from "../fixtures/ipa_test_iface.ts";
import { badModules } from "../fixtures/ipa_bad_modules.ts";
import { warmUpWorkers, within, withoutFdLeak } from "../_helpers.ts";

const MODULE = new URL("../fixtures/ipa_test_module.ts", import.meta.url).href;
const MOD_TS = new URL("../../mod.ts", import.meta.url).href;
type Proxy = IpaProxyOf<typeof TestIpa>;

function create(placement: IpaPlacement, module = MODULE): Promise<Proxy> {
  return placement === "thread"
    ? IpaProxyThread.create(TestIpa, module)
    : IpaProxyIsolated.create(TestIpa, module);
}

async function clean(fn: () => Promise<void>): Promise<void> {
  await warmUpWorkers(
    new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href,
  );
  await warmUpWorkers(
    new URL("../../src/ipa/_ipa_thread_worker.ts", import.meta.url).href,
  );
  await withoutFdLeak(fn);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const placement of ["thread", "isolated"] as const) {
  Deno.test(`IpaProxy (${placement}): sync methods return their results; info and placement are reported`, async () => {
    await clean(async () => {
      await using ipa = await create(placement);
      assertEquals(ipa.placement, placement);
      assertEquals(ipa.info, {
        name: "test-module",
        pipelineName: "test",
        apiVersion: 1,
      });
      assertEquals(ipa.init({ name: "isola" }), { greeting: "hello isola" });
      assertEquals(ipa.state, "stopped");
      ipa.start();
      assertEquals(ipa.state, "running");
      ipa.sleep({ ms: 5 }); // an async implementation of a sync method
      ipa.stop();
      assertEquals(ipa.state, "stopped");
    });
  });

  Deno.test(`IpaProxy (${placement}): fds in arguments arrive valid in the IPA, and back`, async () => {
    await clean(async () => {
      await using ipa = await create(placement);
      using mine = createMemfd({ data: new TextEncoder().encode("stats 42") });
      assertEquals(ipa.readFile({ fd: mine }), { text: "stats 42" });
      assert(mine.isValid, "the caller keeps its own descriptor");
      const { fd } = ipa.makeFile({ text: "from the IPA" });
      assertEquals(new TextDecoder().decode(readFd(fd)), "from the IPA");
      if (typeof fd !== "number") fd.close();
    });
  });

  Deno.test(`IpaProxy (${placement}): async calls are queued in order; their events arrive on the event loop`, async () => {
    await clean(async () => {
      await using ipa = await create(placement);
      ipa.start();
      const got: number[] = [];
      const all = Promise.withResolvers<void>();
      ipa.on("poked", ({ n }) => {
        got.push(n);
        if (got.length === 100) all.resolve();
      });
      for (let n = 1; n <= 100; n++) ipa.poke({ n });
      await within(all.promise, 5000, "100 events");
      assertEquals(got, Array.from({ length: 100 }, (_, i) => i + 1));
      ipa.stop();
    });
  });

  Deno.test(`IpaProxy (${placement}): no event is delivered after stop() returns; async calls are refused then`, async () => {
    await clean(async () => {
      await using ipa = await create(placement);
      assertThrows(() => ipa.poke({ n: 1 }), Error, "not running");
      ipa.start();
      let stopped = false;
      let before = 0;
      let after = 0;
      ipa.on("ticked", () => stopped ? after++ : before++);
      ipa.tick({ everyMs: 1 });
      await sleep(50);
      ipa.stop(); // the module keeps ticking on purpose
      stopped = true;
      const dropped = ipa.droppedEvents;
      await sleep(50);
      assertGreater(before, 5, "events were flowing");
      assertEquals(after, 0, "an event was delivered after stop()");
      assertGreater(ipa.droppedEvents, dropped, "the IPA kept emitting");
      assertThrows(() => ipa.poke({ n: 1 }), Error, "stopped, not running");
    });
  });

  Deno.test(`IpaProxy (${placement}): a throwing method is an IpcRemoteError; the IPA goes on`, async () => {
    await clean(async () => {
      await using ipa = await create(placement);
      const e = assertThrows(() => ipa.fail({}), IpcRemoteError);
      assert(e.message.includes("failing on purpose"), e.message);
      assertEquals(ipa.init({ name: "x" }).greeting, "hello x");
    });
  });

  Deno.test(`IpaProxy (${placement}): a crashing IPA fails later calls at once and tells the owner`, async () => {
    await clean(async () => {
      await using ipa = await create(placement);
      ipa.start();
      const crashed = Promise.withResolvers<IpaCrashEvent>();
      ipa.addEventListener("crash", (e) => crashed.resolve(e as IpaCrashEvent));
      ipa.crash({});
      const e = await within(crashed.promise, 5000, "crash event");
      assertEquals(ipa.state, "crashed");
      if (placement === "isolated") {
        assertEquals(e.exit?.kind, "exited");
        assert(e.exit?.kind === "exited" && e.exit.code === 3);
        assert(
          new TextDecoder().decode(e.exit?.stderr).includes(
            "test module crashing",
          ),
        );
      }
      assertThrows(() => ipa.init({ name: "x" }), Error, "crashed");
    });
  });

  Deno.test(`IpaProxy (${placement}): bad modules fail with an error naming the module, leaving nothing behind`, async () => {
    const dir = await Deno.makeTempDir({
      dir: "/tmp",
      prefix: "isola_bad_ipa",
    });
    try {
      await clean(async () => {
        for (const [file, code] of Object.entries(badModules(MOD_TS))) {
          const path = `${dir}/${file}`;
          await Deno.writeTextFile(path, code);
          const expect: Record<string, string> = {
            "no_factory.ts": "createIpa",
            "no_info.ts": "ipaModuleInfo",
            "wrong_version.ts": "version 7, not 1",
            "throws_on_load.ts": "module exploded while loading",
            "missing_methods.ts": "does not implement start",
            "factory_throws.ts": "factory exploded",
          };
          if (!(file in expect)) continue;
          const e = await assertRejects(
            () => create(placement, path),
            IpaModuleError,
          );
          assert(e.message.includes(file), `${file}: ${e.message}`);
          assert(e.message.includes(expect[file]), `${file}: ${e.message}`);
        }
        await assertRejects(
          () => create(placement, `${dir}/does_not_exist.ts`),
          IpaModuleError,
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`IpaProxy (${placement}): calls after close() fail; close() is idempotent`, async () => {
    await clean(async () => {
      const ipa = await create(placement);
      await ipa.close();
      await ipa.close();
      assertEquals(ipa.state, "closed");
      assertThrows(() => ipa.init({ name: "x" }), Error, "closed");
    });
  });
}

Deno.test("IpaProxyIsolated: the worker cannot read files outside its Landlock read paths; the thread IPA can", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_ll_ipa" });
  try {
    const secret = `${dir}/secret.txt`;
    await Deno.writeTextFile(secret, "top secret");
    await clean(async () => {
      await using iso = await create("isolated");
      const denied = iso.readPath({ path: secret });
      assertEquals(denied.text, undefined);
      assert(/denied/i.test(denied.error ?? ""), denied.error);
      // Its own module directory stays readable.
      const own = iso.readPath({ path: new URL(MODULE).pathname });
      assert(own.text?.includes("ipaModuleInfo"));
      await using thread = await create("thread");
      assertEquals(thread.readPath({ path: secret }).text, "top secret");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("IpaProxyIsolated: a crash while a sync call is pending fails it with the exit report", async () => {
  await clean(async () => {
    await using ipa = await create("isolated");
    ipa.start();
    ipa.crash({}); // exits in its next turn
    let e: unknown;
    try {
      ipa.sleep({ ms: 5000 });
    } catch (err) {
      e = err;
    }
    assert(e instanceof IpcPeerGoneError, String(e));
    assertEquals((e as IpcPeerGoneError).exit?.kind, "exited");
  });
});

Deno.test("`IpaProxyIsolated.create()` refuses a bad warmUp before starting anything, and runs with none", async () => {
  await clean(async () => {
    for (const bad of [-1, 1.5, NaN]) {
      await assertRejects(
        () => IpaProxyIsolated.create(TestIpa, MODULE, { warmUp: bad }),
        RangeError,
        "warmUp",
      );
    }
    await using ipa = await IpaProxyIsolated.create(TestIpa, MODULE, {
      warmUp: 0,
    });
    assertEquals(ipa.init({ name: "x" }), { greeting: "hello x" });
  });
});

Deno.test("IpaProxy warm-up round trips leave the IPA stopped and emit nothing", async () => {
  await clean(async () => {
    await using ipa = await IpaProxyThread.create(TestIpa, MODULE, {
      warmUp: 50,
    });
    assertEquals(ipa.state, "stopped");
    assertEquals(ipa.droppedEvents, 0);
    assertEquals(ipa.init({ name: "y" }), { greeting: "hello y" });
  });
});
