import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  createMemfd,
  defineIpaInterface,
  IPA_RESERVED_NAMES,
  type IpaEventPayload,
  type IpaImplementation,
  type IpaInterfaceSpec,
  type IpaMethods,
  type IpaValue,
  type IpaValueInit,
  isIpaInterface,
  T,
} from "../../mod.ts";
import { withoutFdLeak } from "../_helpers.ts";

const base = {
  name: "echo",
  version: 1,
  methods: {
    start: { sync: true, params: T.struct({}) },
    stop: { sync: true, params: T.struct({}) },
    ping: { sync: true, params: T.struct({ a: T.i32 }), result: T.i32 },
    poke: { sync: false, params: T.struct({}) },
  },
  events: { poked: T.struct({ n: T.u32 }) },
  lifecycle: { start: "start", stop: "stop" },
} as const;

/** Defines `spec` without the compile-time checks, as a JS caller would. */
function defineUnchecked(spec: unknown): unknown {
  return defineIpaInterface(spec as IpaInterfaceSpec);
}

Deno.test("defineIpaInterface() accepts a { start, stop } lifecycle and always-running, and freezes them", () => {
  const Echo = defineIpaInterface(base);
  assert(isIpaInterface(Echo));
  assertEquals(Echo.lifecycle, { start: "start", stop: "stop" });
  assert(Object.isFrozen(Echo.lifecycle));
  const Always = defineIpaInterface({
    ...base,
    lifecycle: "always-running",
  });
  assertEquals(Always.lifecycle, "always-running");
  // Defining an interface again gives an equal one.
  assertEquals(defineIpaInterface(Echo).methodNames, Echo.methodNames);
  assert(!isIpaInterface({ ...base }), "a plain declaration is not defined");
});

Deno.test("defineIpaInterface() rejects a missing or malformed lifecycle with a TypeError saying what to write", () => {
  const cases: [unknown, string][] = [
    [undefined, "lifecycle is missing"],
    ["running", 'lifecycle "running" is invalid'],
    [{ start: "start" }, "lifecycle.stop is missing"],
    [{ start: "begin", stop: "stop" }, '"begin", which is not a method'],
    [{ start: "toString", stop: "stop" }, '"toString", which is not a method'],
    [{ start: "poke", stop: "stop" }, "poke, an async method"],
    [{ start: "start", stop: "start" }, "are both start"],
    [
      { start: "start", stop: "stop", pause: "x" },
      "lifecycle.pause is unknown",
    ],
  ];
  for (const [lifecycle, message] of cases) {
    const e = assertThrows(
      () => defineUnchecked({ ...base, lifecycle }),
      TypeError,
    );
    assert(e.message.startsWith("Cannot define IPA interface echo: "));
    assert(e.message.includes(message), `${message}: ${e.message}`);
  }
});

Deno.test("defineIpaInterface() rejects reserved and malformed names, unknown keys and types not built with T", () => {
  const cases: [unknown, string][] = [
    [{ ...base, name: "" }, "name must be a non-empty string"],
    [{ ...base, version: 0 }, "version must be a positive integer"],
    [{ ...base, lifecycel: "always-running" }, "unknown key lifecycel"],
    [
      { ...base, methods: { ...base.methods, then: base.methods.poke } },
      "method name then is reserved",
    ],
    [
      { ...base, methods: { ...base.methods, close: base.methods.poke } },
      "method name close is reserved",
    ],
    [
      { ...base, events: { crash: T.struct({}) } },
      "event name crash is reserved",
    ],
    [
      { ...base, events: { error: T.struct({}) } },
      "event name error is reserved",
    ],
    [
      { ...base, methods: { ...base.methods, "a-b": base.methods.poke } },
      'method name "a-b" is not an identifier',
    ],
    [
      {
        ...base,
        methods: { ...base.methods, x: { sync: "yes", params: T.struct({}) } },
      },
      "method x's sync must be true or false",
    ],
    [
      {
        ...base,
        methods: {
          ...base.methods,
          x: { sync: false, params: T.struct({}), async: true },
        },
      },
      "method x has an unknown key async",
    ],
    [
      {
        ...base,
        methods: {
          ...base.methods,
          x: { sync: false, params: T.struct({}), result: T.u8 },
        },
      },
      "async method x cannot have a result",
    ],
    [
      {
        ...base,
        methods: {
          ...base.methods,
          x: { sync: true, params: T.struct({ a: { kind: "int" } as never }) },
        },
      },
      "x.params.fields.a is not an IPA type",
    ],
    [{ ...base, events: { e: T.u32 } }, "event e's payload must be T.struct"],
  ];
  for (const [spec, message] of cases) {
    const e = assertThrows(() => defineUnchecked(spec), TypeError);
    assert(e.message.includes(message), `${message}: ${e.message}`);
  }
  assert(IPA_RESERVED_NAMES.methods.includes("then"));
});

Deno.test("IPA value types: received descriptors are OwnedFd, sent ones any FdLike", async () => {
  const Echo = defineIpaInterface({
    ...base,
    methods: {
      ...base.methods,
      share: {
        sync: true,
        params: T.struct({ fd: T.fd }),
        result: T.struct({ fd: T.fd }),
      },
    },
    events: { shared: T.struct({ fd: T.fd }) },
  });
  type E = typeof Echo;
  await withoutFdLeak(() => {
    using mem = createMemfd({ data: new Uint8Array([1]) });
    // What the caller passes may be a number; what it gets back is owned.
    const sent: Parameters<IpaMethods<E>["share"]>[0] = { fd: mem.fd };
    const received: ReturnType<IpaMethods<E>["share"]> = { fd: mem.dup() };
    received.fd.close(); // compiles: OwnedFd
    const payload: IpaEventPayload<E, "shared"> = { fd: mem.dup() };
    payload.fd.close();
    // The implementation receives OwnedFd and may return any FdLike.
    const impl: Pick<IpaImplementation<E>, "share"> = {
      share: ({ fd }) => ({ fd: fd.fd }),
    };
    const own: IpaValue<typeof T.fd> = mem.dup();
    const out = impl.share({ fd: own }) as IpaValueInit<
      E["methods"]["share"]["result"]
    >;
    assertEquals(out.fd, own.fd);
    own.close();
    assertEquals(sent.fd, mem.fd);
  });
});

Deno.test("defineIpaInterface() type-checks the lifecycle's method names", () => {
  assertThrows(
    () =>
      defineIpaInterface({
        ...base,
        // @ts-expect-error: "begin" is not a method of the interface
        lifecycle: { start: "begin", stop: "stop" },
      }),
    TypeError,
  );
});

Deno.test("isIpaInterface() tells a defined interface from anything else", () => {
  assert(isIpaInterface(defineIpaInterface(base)));
  for (const x of [null, 1, "echo", base, [], { methodNames: [] }]) {
    assert(!isIpaInterface(x), String(x));
  }
});
