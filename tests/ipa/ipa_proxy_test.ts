import { fromFileUrl } from "@std/path";
// One behavioural suite, run against both proxies: they must pass it alike.
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  createMemfd,
  defineIpaInterface,
  type IpaCrashEvent,
  IpaDecodeError,
  IpaModuleError,
  type IpaPlacement,
  IpaProxyIsolated,
  type IpaProxyOf,
  type IpaProxyOptions,
  IpaProxyThread,
  IpaStateError,
  IpcPeerGoneError,
  IpcRemoteError,
  IpcTimeoutError,
  readFd,
} from "../../mod.ts";
import { TestIpa } from "../fixtures/ipa_test_iface.ts";
import { badModules } from "../fixtures/ipa_bad_modules.ts";
import {
  type TestFn,
  usernsTest,
  warmUpWorkers,
  within,
  withoutFdLeak,
} from "../_helpers.ts";

const MODULE = new URL("../fixtures/ipa_test_module.ts", import.meta.url).href;
const MOD_TS = new URL("../../mod.ts", import.meta.url).href;
type Proxy = IpaProxyOf<typeof TestIpa>;

function create(
  placement: IpaPlacement,
  module = MODULE,
  options: IpaProxyOptions = {},
): Promise<Proxy> {
  return placement === "thread"
    ? IpaProxyThread.create(TestIpa, module, options)
    : IpaProxyIsolated.create(TestIpa, module, options);
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

/** Registers a test that needs a user namespace when run isolated. */
const testIn = (placement: IpaPlacement) => (name: string, fn: TestFn) =>
  usernsTest(name, fn, placement === "isolated");

for (const placement of ["thread", "isolated"] as const) {
  testIn(placement)(
    `IpaProxy (${placement}): sync methods return their results; info and placement are reported`,
    async () => {
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
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): fds in arguments arrive valid in the IPA, and back`,
    async () => {
      await clean(async () => {
        await using ipa = await create(placement);
        using mine = createMemfd({
          data: new TextEncoder().encode("stats 42"),
        });
        assertEquals(ipa.readFile({ fd: mine }), { text: "stats 42" });
        assert(mine.isValid, "the caller keeps its own descriptor");
        const { fd } = ipa.makeFile({ text: "from the IPA" });
        assertEquals(new TextDecoder().decode(readFd(fd)), "from the IPA");
        fd.close(); // typed OwnedFd: the caller owns it
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): bytes in results and parameters are the receiver's own, call after call`,
    async () => {
      await clean(async () => {
        await using ipa = await create(placement);
        const bytes = (...b: number[]) => new Uint8Array(b);
        // Same lengths each call: the paths that lend their buffers reuse
        // one view per length, so any alias would show here.
        const first = ipa.swap({ frame: 1, data: bytes(1, 2, 3) });
        assertEquals(first, { frame: 1, previous: bytes() });
        const second = ipa.swap({ frame: 2, data: bytes(4, 5, 6) });
        // The IPA kept call 1's bytes while call 2 was received.
        assertEquals(second, { frame: 2, previous: bytes(1, 2, 3) });
        const third = ipa.swap({ frame: 3, data: bytes(7, 8, 9) });
        assertEquals(third, { frame: 3, previous: bytes(4, 5, 6) });
        // The caller's results outlive the next calls, in buffers of their
        // own.
        assertEquals(second.previous, bytes(1, 2, 3));
        assertEquals(second.previous.byteOffset, 0);
        assertEquals(second.previous.buffer.byteLength, 3);
        assert(second.previous.buffer !== third.previous.buffer);
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): a method's result from a Promise is its own, whatever the IPA encodes before the reply goes out`,
    async () => {
      await clean(async () => {
        await using ipa = await create(placement);
        ipa.start();
        // The IPA emits an event from a microtask while the reply waits
        // for its job: a result lent from the encoder's buffer would carry
        // the event's bytes.
        for (let n = 0; n < 20; n++) {
          assertEquals(ipa.later({ n }), { a: n, b: n + 1 });
        }
        ipa.stop();
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): async calls are queued in order; their events arrive on the event loop`,
    async () => {
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
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): no event is delivered after stop() returns; async calls are refused then`,
    async () => {
      await clean(async () => {
        await using ipa = await create(placement);
        assertThrows(() => ipa.poke({ n: 1 }), Error, "not running");
        ipa.start();
        let stopped = false;
        let before = 0;
        let after = 0;
        const flowing = Promise.withResolvers<void>();
        ipa.on("ticked", () => {
          if (stopped) after++;
          else if (++before === 5) flowing.resolve();
        });
        ipa.tick({ everyMs: 1 });
        await within(flowing.promise, 5000, "5 events before stop()");
        ipa.stop(); // the module keeps ticking on purpose
        stopped = true;
        const dropped = ipa.droppedEvents;
        // Until the IPA has emitted 5 more, each dropped rather than delivered.
        await within(
          (async () => {
            while (ipa.droppedEvents < dropped + 5) await sleep(5);
          })(),
          5000,
          "5 events after stop()",
        );
        assertEquals(after, 0, "an event was delivered after stop()");
        const e = assertThrows(() => ipa.poke({ n: 1 }), IpaStateError);
        assertEquals(e.state, "stopped");
        assert(e.message.includes("test.poke"), e.message);
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): a throwing method is an IpcRemoteError; the IPA goes on`,
    async () => {
      await clean(async () => {
        await using ipa = await create(placement);
        const e = assertThrows(() => ipa.fail({}), IpcRemoteError);
        assert(
          e.message.includes("test.fail threw Error: failing on purpose"),
          e.message,
        );
        assertEquals(ipa.init({ name: "x" }).greeting, "hello x");
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): a crashing IPA fails later calls at once and tells the owner`,
    async () => {
      await clean(async () => {
        await using ipa = await create(placement);
        ipa.start();
        const crashed = Promise.withResolvers<IpaCrashEvent>();
        // Typed: a crash listener gets an IpaCrashEvent.
        ipa.addEventListener("crash", (e) => crashed.resolve(e));
        ipa.crash({});
        const e = await within(crashed.promise, 5000, "crash event");
        assertEquals(ipa.state, "crashed");
        if (placement === "isolated") {
          assert(e.exit?.kind === "exited" && e.exit.code === 3);
          assert(
            new TextDecoder().decode(e.exit?.stderr).includes(
              "test module crashing",
            ),
          );
          assertEquals(e.error, null);
        } else {
          assertEquals(e.exit, null);
          assert(e.error?.message.includes("test module crashing"));
        }
        const later = assertThrows(
          () => ipa.init({ name: "x" }),
          IpcPeerGoneError,
        );
        assert(later.message.includes("test.init"), later.message);
        assert(later.message.includes("test module crashing"), later.message);
        assertThrows(() => ipa.poke({ n: 1 }), IpcPeerGoneError);
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): bad modules fail with an error naming the module, leaving nothing behind`,
    async () => {
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
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): calls after close() fail; close() is idempotent`,
    async () => {
      await clean(async () => {
        const ipa = await create(placement);
        await ipa.close();
        await ipa.close();
        assertEquals(ipa.state, "closed");
        const e = assertThrows(() => ipa.init({ name: "x" }), IpaStateError);
        assertEquals(e.state, "closed");
      });
    },
  );
}

usernsTest(
  "IpaProxyIsolated: the worker cannot read files outside its Landlock read paths; the thread IPA can",
  async () => {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_ll_ipa" });
    try {
      const secret = `${dir}/secret.txt`;
      await Deno.writeTextFile(secret, "top secret");
      await clean(async () => {
        await using iso = await create("isolated");
        const denied = iso.readPath({ path: secret });
        assertEquals(denied.text, undefined);
        // Outside its jail the file does not exist (or Landlock denies it).
        assert(/denied|No such file/i.test(denied.error ?? ""), denied.error);
        // Its own module directory stays readable.
        const own = iso.readPath({ path: fromFileUrl(MODULE) });
        assert(own.text?.includes("ipaModuleInfo"));
        await using thread = await create("thread");
        assertEquals(thread.readPath({ path: secret }).text, "top secret");
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

for (const placement of ["thread", "isolated"] as const) {
  const deaths = [
    { how: "an uncaught error", reason: "test module crashing", crash: {} },
    {
      how: "an unhandled rejection",
      reason: "test module rejecting",
      crash: { unhandledRejection: true },
    },
    {
      how: "Deno.exit()",
      reason: "the module called Deno.exit(5)",
      crash: { exit: true },
    },
  ];
  for (const { how, reason, crash } of deaths) {
    // The isolated module exits at once whatever it is asked: one case.
    if (placement === "isolated" && how !== deaths[0].how) continue;
    testIn(placement)(
      `IpaProxy (${placement}): ${how} while a sync call is pending fails the call with the reason, then the crash event follows`,
      async () => {
        await clean(async () => {
          // The call's deadline is far beyond the sleep: a crash that went
          // unnoticed would let the call return normally or time out.
          await using ipa = await create(placement, MODULE, {
            timeout: 60_000,
          });
          ipa.start();
          const events: IpaCrashEvent[] = [];
          const crashed = Promise.withResolvers<void>();
          ipa.addEventListener("crash", (e) => {
            events.push(e);
            crashed.resolve();
          });
          ipa.crash(crash); // dies in its next turn
          const e = assertThrows(
            () => ipa.sleep({ ms: 30_000 }),
            IpcPeerGoneError,
          );
          assert(e.message.includes("test.sleep"), e.message);
          assert(e.message.includes(reason), e.message);
          // Crashed at once, before the event.
          assertEquals(ipa.state, "crashed");
          assertEquals(events.length, 0);
          await within(crashed.promise, 5000, "crash event");
          assertEquals(events.length, 1);
          if (placement === "thread") {
            assert(events[0].error?.message.includes(reason));
            assert((e.cause as Error).message.includes(reason));
          } else {
            assertEquals(e.exit?.kind, "exited");
          }
          await sleep(50);
          assertEquals(events.length, 1, "one crash event only");
        });
      },
    );
  }

  testIn(placement)(
    `IpaProxy (${placement}): a module that dies while starting is an IpaModuleError that says why`,
    async () => {
      const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_die" });
      try {
        const path = `${dir}/dies.ts`;
        await Deno.writeTextFile(
          path,
          `export const ipaModuleInfo = { name: "d", pipelineName: "test", apiVersion: 1 };
setTimeout(() => { throw new Error("dies at start-up"); }, 0);
await new Promise(() => {}); // never done loading\n`,
        );
        await clean(async () => {
          const e = await assertRejects(
            () => create(placement, path),
            IpaModuleError,
          );
          assert(e.message.includes("dies.ts could not be started"), e.message);
          assert(e.message.includes("dies at start-up"), e.message);
          if (placement === "isolated") {
            assert(e.message.includes("exited with code 1"), e.message);
          }
          assert(!/2147418112|not known yet/.test(e.message), e.message);
        });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): errors name the interface, the method and the command`,
    async () => {
      await clean(async () => {
        await using ipa = await create(placement, MODULE, { timeout: 100 });
        const bad = assertThrows(
          // deno-lint-ignore no-explicit-any
          () => ipa.init({ name: 1 as any }),
          TypeError,
        );
        assertEquals(
          bad.message,
          "Cannot encode params.name of test.init: 1 is not a string",
        );
        const late = assertThrows(
          () => ipa.sleep({ ms: 500 }),
          IpcTimeoutError,
        );
        assert(late.message.startsWith("Cannot call test.sleep (command 7)"));
        assertEquals(late.timeout, 100);
        // The IPA is still usable, and still stopped.
        assertEquals(ipa.state, "stopped");
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): the lifecycle's declared methods, not their names, start and stop the IPA`,
    async () => {
      const StartsOnInit = defineIpaInterface({
        ...TestIpa,
        lifecycle: { start: "init", stop: "fail" },
      });
      await clean(async () => {
        await using ipa = placement === "thread"
          ? await IpaProxyThread.create(StartsOnInit, MODULE)
          : await IpaProxyIsolated.create(StartsOnInit, MODULE);
        ipa.start(); // only a method named start
        assertEquals(ipa.state, "stopped");
        assertThrows(() => ipa.poke({ n: 1 }), IpaStateError);
        ipa.init({ name: "x" });
        assertEquals(ipa.state, "running");
        const poked = Promise.withResolvers<number>();
        ipa.on("poked", ({ n }) => poked.resolve(n));
        ipa.poke({ n: 7 });
        assertEquals(await within(poked.promise, 5000, "poked"), 7);
        // The stop method failed, and the IPA is stopped all the same.
        assertThrows(() => ipa.fail({}), IpcRemoteError);
        assertEquals(ipa.state, "stopped");
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): an always-running IPA takes async calls and delivers typed events from creation`,
    async () => {
      const Always = defineIpaInterface({
        name: "test",
        version: 1,
        methods: { poke: TestIpa.methods.poke },
        events: { poked: TestIpa.events.poked },
        lifecycle: "always-running",
      });
      await clean(async () => {
        await using ipa = placement === "thread"
          ? await IpaProxyThread.create(Always, MODULE)
          : await IpaProxyIsolated.create(Always, MODULE);
        assertEquals(ipa.state, "running");
        const poked = Promise.withResolvers<number>();
        // Typed: e.message is the decoded payload.
        ipa.addEventListener("poked", (e) => poked.resolve(e.message.n));
        ipa.poke({ n: 3 });
        assertEquals(await within(poked.promise, 5000, "poked"), 3);
      });
    },
  );

  testIn(placement)(
    `IpaProxy (${placement}): bad arguments and options are TypeErrors naming them, before anything starts`,
    async () => {
      const make = placement === "thread"
        ? IpaProxyThread.create
        : IpaProxyIsolated.create;
      await clean(async () => {
        const cases: [unknown, unknown, unknown, string][] = [
          [{ name: "x" }, MODULE, {}, "made by defineIpaInterface"],
          [TestIpa, 42, {}, "module must be a path or URL"],
          [TestIpa, MODULE, [], "options must be an object"],
          [TestIpa, MODULE, { timeout: "1" }, "options.timeout"],
          [TestIpa, MODULE, { pipelineName: 1 }, "options.pipelineName"],
          [TestIpa, MODULE, { isolate: "yes" }, "options.isolate"],
          [TestIpa, MODULE, { allowUnisolated: 1 }, "options.allowUnisolated"],
          [TestIpa, MODULE, { denoFlags: "--allow-env" }, "options.denoFlags"],
          [TestIpa, MODULE, { denoFlags: ["x.ts"] }, "options.denoFlags[0]"],
          [TestIpa, MODULE, { env: { A: 1 } }, "options.env.A"],
          [TestIpa, MODULE, { filesystem: true }, "options.filesystem"],
          [TestIpa, MODULE, { filesystem: { read: "/x" } }, "filesystem.read"],
        ];
        for (const [iface, module, options, names] of cases) {
          const e = await assertRejects(
            // deno-lint-ignore no-explicit-any
            () => make(iface as any, module as any, options as any),
            TypeError,
          );
          assert(e.message.includes(names), e.message);
        }
        await assertRejects(
          () => make(TestIpa, MODULE, { timeout: -1 }),
          RangeError,
          "options.timeout",
        );
      });
    },
  );
}

usernsTest(
  "IpaProxyIsolated: events that do not decode are dropped, counted and reported as error events; delivery goes on",
  async () => {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_badev" });
    try {
      // A module that writes malformed events on its socket behind the
      // host's back, then a good one.
      const path = `${dir}/bad_events.ts`;
      await Deno.writeTextFile(
        path,
        `import { IpcPipeWorker, OwnedFd } from "${MOD_TS}";
import { createIpa as base } from "${MODULE}";
export { ipaModuleInfo } from "${MODULE}";
export function createIpa(ctx) {
  return { ...base(ctx), poke: ({ n }) => {
    const own = new OwnedFd(Number(Deno.args.at(-1)));
    const raw = new IpcPipeWorker(own.dup());
    own.release();
    raw.emit({ cmd: 1, data: new Uint8Array([1]) }); // poked: truncated
    raw.emit({ cmd: 99 }); // no such event
    raw.close();
    ctx.emit("poked", { n });
  } };
}
`,
      );
      await clean(async () => {
        await using ipa = await create("isolated", path);
        ipa.start();
        const errors: Error[] = [];
        ipa.addEventListener("error", (e) => errors.push(e.error));
        const poked = Promise.withResolvers<number>();
        ipa.on("poked", ({ n }) => poked.resolve(n));
        ipa.poke({ n: 2 });
        assertEquals(await within(poked.promise, 5000, "good event"), 2);
        assertEquals(errors.length, 2);
        assert(errors[0] instanceof IpaDecodeError, String(errors[0]));
        assert(errors[0].message.includes("of test.poked"), errors[0].message);
        assert(errors[1] instanceof RangeError, String(errors[1]));
        assert(errors[1].message.includes("no event 99"), errors[1].message);
        assertEquals(ipa.droppedEvents, 2);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

usernsTest(
  "`IpaProxyIsolated.create()` refuses a bad warmUp before starting anything, and runs with none",
  async () => {
    await clean(async () => {
      for (const bad of [-1, 1.5, NaN]) {
        await assertRejects(
          () => IpaProxyIsolated.create(TestIpa, MODULE, { warmUp: bad }),
          RangeError,
          "options.warmUp",
        );
      }
      await assertRejects(
        // deno-lint-ignore no-explicit-any
        () => IpaProxyIsolated.create(TestIpa, MODULE, { keepWarm: 1 as any }),
        TypeError,
        "options.keepWarm",
      );
      await using ipa = await IpaProxyIsolated.create(TestIpa, MODULE, {
        warmUp: 0,
      });
      assertEquals(ipa.init({ name: "x" }), { greeting: "hello x" });
    });
  },
);

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

for (const placement of ["thread", "isolated"] as const) {
  testIn(placement)(
    `IpaProxy (${placement}): sync calls at a steady cadence get a warm call before each, which the IPA never sees; keepWarm: false makes none`,
    async () => {
      await clean(async () => {
        for (const keepWarm of [true, false]) {
          await using ipa = await create(placement, MODULE, {
            warmUp: 0,
            keepWarm,
          });
          let previous = new Uint8Array(0);
          for (let frame = 0; frame < 12; frame++) {
            if (frame > 0) await sleep(25);
            const data = new Uint8Array([frame, 7]);
            // The method answers the bytes of its previous call: the warm
            // calls never reach it.
            assertEquals(ipa.swap({ frame, data }), { frame, previous });
            previous = data;
          }
          const warm = (ipa as unknown as { warmCalls: number }).warmCalls;
          // One per gap after the first; a timer that fires late on a
          // loaded machine may miss some.
          if (keepWarm) assert(warm >= 2 && warm <= 11, `${warm}`);
          else assertEquals(warm, 0);
        }
        // Closed proxies leave no timer armed (the sanitizer checks).
      });
    },
  );
}
