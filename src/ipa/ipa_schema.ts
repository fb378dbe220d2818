/**
 * IPA interfaces declared once, in TypeScript: the types a method's
 * parameters, results and events may have, and {@linkcode defineIpaInterface}.
 * Both IPA proxies (thread and isolated process) are built from the same
 * declaration and have the same TypeScript type; the serializer
 * (`ipa_serializer.ts`) encodes exactly these types.
 *
 * libcamera declares IPA interfaces in mojom and generates C++ from them;
 * here the declaration is a plain object and the types are inferred.
 *
 * @module
 */
import type { FdLike, OwnedFd } from "../fd/owned_fd.ts";

/** Kinds of the leaf types. */
export type IpaScalarKind =
  | "bool"
  | "u8"
  | "u16"
  | "u32"
  | "u64"
  | "i8"
  | "i16"
  | "i32"
  | "i64"
  | "f32"
  | "f64"
  | "string"
  | "bytes"
  | "fd"
  | "controls";

/** A leaf type. */
export interface IpaScalarType<K extends IpaScalarKind = IpaScalarKind> {
  /** What it is. */
  readonly kind: K;
}

/** A list of `items`. */
export interface IpaArrayType<E extends IpaType = IpaType> {
  /** Discriminant. */
  readonly kind: "array";
  /** The element type. */
  readonly items: E;
}

/** A map from `key` to `value`. */
export interface IpaMapType<
  K extends IpaType = IpaType,
  V extends IpaType = IpaType,
> {
  /** Discriminant. */
  readonly kind: "map";
  /** The key type. */
  readonly key: K;
  /** The value type. */
  readonly value: V;
}

/** A struct: named fields in declaration order. */
export interface IpaStructType<
  F extends Readonly<Record<string, IpaType>> = Readonly<
    Record<string, IpaType>
  >,
> {
  /** Discriminant. */
  readonly kind: "struct";
  /** The fields. */
  readonly fields: F;
}

/** A value that may be absent (`undefined`). */
export interface IpaOptionalType<E extends IpaType = IpaType> {
  /** Discriminant. */
  readonly kind: "optional";
  /** The type when present. */
  readonly inner: E;
}

/** Any type an IPA interface can carry. */
export type IpaType =
  | IpaScalarType
  | IpaArrayType
  | IpaMapType
  | IpaStructType
  | IpaOptionalType;

/** A control's value: libcamera's control types, in JavaScript. */
export type ControlValue = boolean | number | bigint | string | number[];

/** A control list: numeric control id to value (libcamera's ControlList). */
export type ControlList = Map<number, ControlValue>;

/** The keys of struct fields `F` whose type is optional. */
export type IpaOptionalKeys<F> = {
  [K in keyof F]: F[K] extends IpaOptionalType ? K : never;
}[keyof F];
/** The keys of struct fields `F` whose type is not optional. */
export type IpaRequiredKeys<F> = Exclude<keyof F, IpaOptionalKeys<F>>;
/** Flattens an intersection for display. */
export type IpaSimplify<T> = { [K in keyof T]: T[K] } & unknown;

/**
 * The JavaScript type of values of an {@linkcode IpaType}, as received
 * (decoded): integers up to 32 bits and floats are `number`, 64-bit integers
 * `bigint`, `bytes` a `Uint8Array`, `fd` an {@linkcode OwnedFd} (the receiver
 * owns it and must close it), `controls` a {@linkcode ControlList}; optional
 * struct fields may be absent. `Fd` is the type of descriptors:
 * {@linkcode IpaValueInit} is the same with any {@linkcode FdLike}, for
 * values being sent.
 */
export type IpaValue<T, Fd extends FdLike = OwnedFd> = T extends
  IpaScalarType<infer K> ? IpaScalarValue<K, Fd>
  : T extends IpaArrayType<infer E> ? IpaValue<E, Fd>[]
  : T extends IpaMapType<infer K, infer V>
    ? Map<IpaValue<K, Fd>, IpaValue<V, Fd>>
  : T extends IpaOptionalType<infer E> ? IpaValue<E, Fd> | undefined
  : T extends IpaStructType<infer F> ? IpaSimplify<
      & { [K in IpaRequiredKeys<F>]: IpaValue<F[K], Fd> }
      & { [K in IpaOptionalKeys<F>]?: IpaValue<F[K], Fd> }
    >
  : never;

/**
 * The JavaScript type of values of an {@linkcode IpaType} as sent
 * (encoded): like {@linkcode IpaValue}, but a descriptor may be any
 * {@linkcode FdLike} (an `OwnedFd` or a plain number), which the sender
 * keeps.
 */
export type IpaValueInit<T> = IpaValue<T, FdLike>;

/** The JavaScript type of a leaf kind (`Fd`: see {@linkcode IpaValue}). */
export type IpaScalarValue<
  K extends IpaScalarKind,
  Fd extends FdLike = OwnedFd,
> = K extends "bool" ? boolean
  : K extends "u64" | "i64" ? bigint
  : K extends "string" ? string
  : K extends "bytes" ? Uint8Array
  : K extends "fd" ? Fd
  : K extends "controls" ? ControlList
  : number;

const scalar = <K extends IpaScalarKind>(kind: K): IpaScalarType<K> =>
  Object.freeze({ kind });

/** The type of {@linkcode T}: the leaf types and the type builders. */
export interface IpaTypeBuilders {
  /** `true` / `false`. */
  readonly bool: IpaScalarType<"bool">;
  /** Unsigned 8-bit integer. */
  readonly u8: IpaScalarType<"u8">;
  /** Unsigned 16-bit integer. */
  readonly u16: IpaScalarType<"u16">;
  /** Unsigned 32-bit integer. */
  readonly u32: IpaScalarType<"u32">;
  /** Unsigned 64-bit integer (`bigint`). */
  readonly u64: IpaScalarType<"u64">;
  /** Signed 8-bit integer. */
  readonly i8: IpaScalarType<"i8">;
  /** Signed 16-bit integer. */
  readonly i16: IpaScalarType<"i16">;
  /** Signed 32-bit integer. */
  readonly i32: IpaScalarType<"i32">;
  /** Signed 64-bit integer (`bigint`). */
  readonly i64: IpaScalarType<"i64">;
  /** 32-bit float. */
  readonly f32: IpaScalarType<"f32">;
  /** 64-bit float. */
  readonly f64: IpaScalarType<"f64">;
  /** UTF-8 string. */
  readonly string: IpaScalarType<"string">;
  /** Bytes (`Uint8Array`). */
  readonly bytes: IpaScalarType<"bytes">;
  /** A file descriptor: travels as SCM_RIGHTS, arrives owned. */
  readonly fd: IpaScalarType<"fd">;
  /** A control list: numeric id to {@linkcode ControlValue}. */
  readonly controls: IpaScalarType<"controls">;
  /** A list of `items`. */
  array<E extends IpaType>(items: E): IpaArrayType<E>;
  /** A map from `key` to `value`. */
  map<K extends IpaType, V extends IpaType>(key: K, value: V): IpaMapType<K, V>;
  /** A struct with named fields, encoded in declaration order. */
  struct<const F extends Readonly<Record<string, IpaType>>>(
    fields: F,
  ): IpaStructType<F>;
  /** A value that may be `undefined`. */
  optional<E extends IpaType>(inner: E): IpaOptionalType<E>;
}

/**
 * Builders of {@linkcode IpaType}s.
 *
 * @example
 * ```ts
 * import { T } from "@isola/isola";
 *
 * const Frame = T.struct({
 *   id: T.u32,
 *   stats: T.fd,
 *   regions: T.array(T.struct({ x: T.u16, y: T.u16 })),
 *   note: T.optional(T.string),
 * });
 * console.log(Frame.kind); // "struct"
 * ```
 */
export const T: IpaTypeBuilders = {
  /** `true` / `false`. */
  bool: scalar("bool"),
  /** Unsigned 8-bit integer. */
  u8: scalar("u8"),
  /** Unsigned 16-bit integer. */
  u16: scalar("u16"),
  /** Unsigned 32-bit integer. */
  u32: scalar("u32"),
  /** Unsigned 64-bit integer (`bigint`). */
  u64: scalar("u64"),
  /** Signed 8-bit integer. */
  i8: scalar("i8"),
  /** Signed 16-bit integer. */
  i16: scalar("i16"),
  /** Signed 32-bit integer. */
  i32: scalar("i32"),
  /** Signed 64-bit integer (`bigint`). */
  i64: scalar("i64"),
  /** 32-bit float. */
  f32: scalar("f32"),
  /** 64-bit float. */
  f64: scalar("f64"),
  /** UTF-8 string. */
  string: scalar("string"),
  /** Bytes (`Uint8Array`). */
  bytes: scalar("bytes"),
  /** A file descriptor: travels as SCM_RIGHTS, arrives owned. */
  fd: scalar("fd"),
  /** A control list: numeric id to {@linkcode ControlValue}. */
  controls: scalar("controls"),
  /**
   * A list.
   *
   * @param items The element type.
   * @returns The array type.
   */
  array<E extends IpaType>(items: E): IpaArrayType<E> {
    return Object.freeze({ kind: "array", items });
  },
  /**
   * A map.
   *
   * @param key The key type.
   * @param value The value type.
   * @returns The map type.
   */
  map<K extends IpaType, V extends IpaType>(
    key: K,
    value: V,
  ): IpaMapType<K, V> {
    return Object.freeze({ kind: "map", key, value });
  },
  /**
   * A struct with named fields, encoded in declaration order.
   *
   * @param fields The field types.
   * @returns The struct type.
   */
  struct<const F extends Readonly<Record<string, IpaType>>>(
    fields: F,
  ): IpaStructType<F> {
    return Object.freeze({ kind: "struct", fields: Object.freeze(fields) });
  },
  /**
   * A value that may be `undefined`.
   *
   * @param inner The type when present.
   * @returns The optional type.
   */
  optional<E extends IpaType>(inner: E): IpaOptionalType<E> {
    return Object.freeze({ kind: "optional", inner });
  },
};

/** A method: synchronous (blocks the caller) or asynchronous (queued). */
export interface IpaMethodSpec {
  /** Whether the caller waits for the result. */
  readonly sync: boolean;
  /** The parameters, as one struct. */
  readonly params: IpaStructType;
  /** The result of a sync method (none: `undefined`). */
  readonly result?: IpaType;
}

/**
 * When an IPA is running, declared by its interface:
 * - `{ start, stop }`: the names of two sync methods. The IPA is `stopped`
 *   until `start` returns successfully, and `stopped` again once `stop`
 *   returns (even if it failed); async methods are refused and events
 *   dropped while it is stopped (libcamera's `IPAProxyThread` rule).
 * - `"always-running"`: the IPA runs from creation to `close()`; every
 *   method may be called and every event is delivered.
 */
export type IpaLifecycle<M extends string = string> =
  | "always-running"
  | { readonly start: M; readonly stop: M };

/** What {@linkcode defineIpaInterface} takes. */
export interface IpaInterfaceSpec {
  /** The interface's name, e.g. `"camera"`. */
  readonly name: string;
  /** Its version: a module must declare the same `apiVersion`. */
  readonly version: number;
  /** The methods, by name (order = wire command numbers). */
  readonly methods: Readonly<Record<string, IpaMethodSpec>>;
  /** The events the IPA emits, by name, each with a struct payload. */
  readonly events: Readonly<Record<string, IpaStructType>>;
  /** Which methods start and stop the IPA, or `"always-running"`. */
  readonly lifecycle: IpaLifecycle;
}

/** An interface, with its methods and events numbered for the wire. */
export type IpaInterface<S extends IpaInterfaceSpec = IpaInterfaceSpec> =
  & S
  & {
    /** Method names in command order (command = index + 1). */
    readonly methodNames: readonly (keyof S["methods"] & string)[];
    /** Event names in command order (command = index + 1). */
    readonly eventNames: readonly (keyof S["events"] & string)[];
  };

/**
 * Names a method or event may not have: the members of a proxy (a method
 * named `close` would hide {@linkcode IpaProxy.close}; one named `then`
 * would make the proxy look like a Promise), and the events a proxy
 * dispatches itself.
 *
 * @example
 * ```ts
 * import { IPA_RESERVED_NAMES } from "@isola/isola";
 *
 * console.log(IPA_RESERVED_NAMES.events); // [ "crash", "error" ]
 * ```
 */
export const IPA_RESERVED_NAMES: Readonly<{
  methods: readonly string[];
  events: readonly string[];
}> = Object.freeze({
  methods: Object.freeze([
    "close",
    "on",
    "state",
    "info",
    "placement",
    "droppedEvents",
    "addEventListener",
    "removeEventListener",
    "dispatchEvent",
    "interface",
    "pid",
    "connectModule",
    "warmUp",
    "warmUpOrClose",
    "keepWarm",
    "warmCalls",
    "then",
    "constructor",
  ]),
  events: Object.freeze(["crash", "error"]),
});

/** Deepest nesting of types, as the serializer allows (docs/ipa_wire.md). */
const MAX_TYPE_DEPTH = 64;
const SCALAR_KINDS: ReadonlySet<string> = new Set<IpaScalarKind>([
  "bool",
  "u8",
  "u16",
  "u32",
  "u64",
  "i8",
  "i16",
  "i32",
  "i64",
  "f32",
  "f64",
  "string",
  "bytes",
  "fd",
  "controls",
]);
const SPEC_KEYS = ["name", "version", "methods", "events", "lifecycle"];
// An already defined interface may be defined again.
const DERIVED_KEYS = ["methodNames", "eventNames"];
const METHOD_KEYS = ["sync", "params", "result"];
const NAME = /^[A-Za-z_$][\w$]*$/;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function checkType(t: unknown, where: string, fail: Fail, depth = 0): void {
  if (depth > MAX_TYPE_DEPTH) {
    fail(`${where} nests deeper than ${MAX_TYPE_DEPTH} levels`);
  }
  const kind = isObject(t) ? t.kind : undefined;
  if (typeof kind === "string" && SCALAR_KINDS.has(kind)) return;
  const x = t as Record<string, unknown>;
  switch (kind) {
    case "array":
      return checkType(x.items, `${where}.items`, fail, depth + 1);
    case "optional":
      return checkType(x.inner, `${where}.inner`, fail, depth + 1);
    case "map":
      checkType(x.key, `${where}.key`, fail, depth + 1);
      return checkType(x.value, `${where}.value`, fail, depth + 1);
    case "struct":
      if (!isObject(x.fields)) fail(`${where}.fields is not an object`);
      for (const [f, ft] of Object.entries(x.fields as object)) {
        checkType(ft, `${where}.fields.${f}`, fail, depth + 1);
      }
      return;
  }
  fail(`${where} is not an IPA type (build it with T)`);
}

type Fail = (problem: string) => never;

function checkName(name: string, what: string, fail: Fail): void {
  if (!NAME.test(name)) {
    fail(`${what} name ${JSON.stringify(name)} is not an identifier`);
  }
}

function checkLifecycle(spec: IpaInterfaceSpec, fail: Fail): void {
  const lc: unknown = spec.lifecycle;
  if (lc === "always-running") return;
  const usage =
    'give { start: "<sync method>", stop: "<sync method>" } or "always-running"';
  if (lc === undefined) fail(`lifecycle is missing: ${usage}`);
  if (!isObject(lc)) {
    fail(`lifecycle ${JSON.stringify(lc)} is invalid: ${usage}`);
  }
  for (const key of Object.keys(lc)) {
    if (key !== "start" && key !== "stop") {
      fail(`lifecycle.${key} is unknown: ${usage}`);
    }
  }
  for (const key of ["start", "stop"] as const) {
    const m = lc[key];
    if (typeof m !== "string") fail(`lifecycle.${key} is missing: ${usage}`);
    const def = Object.hasOwn(spec.methods, m) ? spec.methods[m] : undefined;
    if (def === undefined) {
      fail(
        `lifecycle.${key} names ${JSON.stringify(m)}, which is not a method`,
      );
    }
    if (def.sync !== true) {
      fail(
        `lifecycle.${key} names ${m}, an async method: the caller must know when it is done, so it must be sync`,
      );
    }
  }
  if (lc.start === lc.stop) {
    fail(`lifecycle.start and lifecycle.stop are both ${lc.start}`);
  }
}

/**
 * Declares an IPA interface. Method and event numbers on the wire follow
 * declaration order. Everything is checked here, once, so that a proxy
 * made from the interface cannot meet a malformed declaration.
 *
 * @param spec Name, version, methods, events and lifecycle.
 * @returns The frozen interface.
 * @throws {TypeError} If a name is empty or not an identifier, the version
 *   not a positive integer, a type not built with {@linkcode T}, an async
 *   method has a result, a name is reserved ({@linkcode IPA_RESERVED_NAMES}),
 *   a key is unknown, or the lifecycle is missing, names an unknown or
 *   async method, or the same method twice.
 *
 * @example An IPA with a lifecycle
 * ```ts
 * import { defineIpaInterface, T } from "@isola/isola";
 *
 * const Echo = defineIpaInterface({
 *   name: "echo",
 *   version: 1,
 *   methods: {
 *     start: { sync: true, params: T.struct({}) },
 *     stop: { sync: true, params: T.struct({}) },
 *     echo: { sync: true, params: T.struct({ text: T.string }), result: T.string },
 *     poke: { sync: false, params: T.struct({}) },
 *   },
 *   events: { poked: T.struct({ count: T.u32 }) },
 *   lifecycle: { start: "start", stop: "stop" },
 * });
 * console.log(Echo.methodNames); // [ "start", "stop", "echo", "poke" ]
 * ```
 *
 * @example An IPA that is always running
 * ```ts
 * import { defineIpaInterface, T } from "@isola/isola";
 *
 * const Counter = defineIpaInterface({
 *   name: "counter",
 *   version: 1,
 *   methods: { add: { sync: true, params: T.struct({ n: T.u32 }), result: T.u32 } },
 *   events: {},
 *   lifecycle: "always-running",
 * });
 * console.log(Counter.lifecycle); // "always-running"
 * ```
 */
export function defineIpaInterface<const S extends IpaInterfaceSpec>(
  spec: S & { readonly lifecycle: IpaLifecycle<keyof S["methods"] & string> },
): IpaInterface<S> {
  if (!isObject(spec)) {
    throw new TypeError(
      `Cannot define IPA interface: the declaration is ${typeof spec}, not an object`,
    );
  }
  if (typeof spec.name !== "string" || spec.name === "") {
    throw new TypeError(
      "Cannot define IPA interface: name must be a non-empty string",
    );
  }
  const fail: Fail = (problem) => {
    throw new TypeError(`Cannot define IPA interface ${spec.name}: ${problem}`);
  };
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.includes(key) && !DERIVED_KEYS.includes(key)) {
      fail(`unknown key ${key} (expected ${SPEC_KEYS.join(", ")})`);
    }
  }
  if (!Number.isInteger(spec.version) || spec.version < 1) {
    fail("version must be a positive integer");
  }
  if (!isObject(spec.methods)) fail("methods must be an object");
  if (!isObject(spec.events)) fail("events must be an object");
  for (const [m, def] of Object.entries(spec.methods)) {
    checkName(m, "method", fail);
    if (IPA_RESERVED_NAMES.methods.includes(m)) {
      fail(`method name ${m} is reserved (a member of the proxy)`);
    }
    if (!isObject(def)) fail(`method ${m} must be an object`);
    for (const key of Object.keys(def)) {
      if (!METHOD_KEYS.includes(key)) {
        fail(
          `method ${m} has an unknown key ${key} (expected ${
            METHOD_KEYS.join(", ")
          })`,
        );
      }
    }
    if (typeof def.sync !== "boolean") {
      fail(`method ${m}'s sync must be true or false`);
    }
    if (def.params?.kind !== "struct") {
      fail(`${m}'s params must be T.struct(...)`);
    }
    checkType(def.params, `${m}.params`, fail);
    if (def.result !== undefined) {
      if (!def.sync) fail(`async method ${m} cannot have a result`);
      checkType(def.result, `${m}.result`, fail);
    }
  }
  for (const [e, payload] of Object.entries(spec.events)) {
    checkName(e, "event", fail);
    if (IPA_RESERVED_NAMES.events.includes(e)) {
      fail(`event name ${e} is reserved (the proxy dispatches it)`);
    }
    if ((payload as IpaType | undefined)?.kind !== "struct") {
      fail(`event ${e}'s payload must be T.struct(...)`);
    }
    checkType(payload, `events.${e}`, fail);
  }
  checkLifecycle(spec, fail);
  const {
    methodNames: _m,
    eventNames: _e,
    ...own
  } = spec as S & Partial<IpaInterface>;
  return Object.freeze({
    ...own,
    lifecycle: typeof spec.lifecycle === "string"
      ? spec.lifecycle
      : Object.freeze({ ...spec.lifecycle }),
    methodNames: Object.freeze(Object.keys(spec.methods)),
    eventNames: Object.freeze(Object.keys(spec.events)),
  }) as unknown as IpaInterface<S>;
}

/**
 * Whether `x` is an interface made by {@linkcode defineIpaInterface} (a
 * frozen declaration with its numbered method and event names).
 *
 * @param x Anything.
 * @returns Whether it is a defined interface.
 *
 * @example
 * ```ts
 * import { CameraIpa, isIpaInterface } from "@isola/isola";
 *
 * console.log(isIpaInterface(CameraIpa), isIpaInterface({ name: "camera" })); // true false
 * ```
 */
export function isIpaInterface(x: unknown): x is IpaInterface {
  if (!isObject(x) || !Object.isFrozen(x)) return false;
  return Array.isArray(x.methodNames) && Array.isArray(x.eventNames) &&
    (x.lifecycle === "always-running" || isObject(x.lifecycle));
}

/** The parameters of method `M`, as the IPA receives them. */
export type IpaParams<
  S extends IpaInterfaceSpec,
  M extends keyof S["methods"],
> = IpaValue<S["methods"][M]["params"]>;

/** The parameters of method `M`, as the caller passes them. */
export type IpaParamsInit<
  S extends IpaInterfaceSpec,
  M extends keyof S["methods"],
> = IpaValueInit<S["methods"][M]["params"]>;

/** The result of method `M` as the caller gets it (`void` without one). */
export type IpaResult<
  S extends IpaInterfaceSpec,
  M extends keyof S["methods"],
> = S["methods"][M]["result"] extends IpaType
  ? IpaValue<S["methods"][M]["result"]>
  : void;

/** The result of method `M` as the IPA returns it (`void` without one). */
export type IpaResultInit<
  S extends IpaInterfaceSpec,
  M extends keyof S["methods"],
> = S["methods"][M]["result"] extends IpaType
  ? IpaValueInit<S["methods"][M]["result"]>
  : void;

/** The payload of event `E`, as a listener gets it. */
export type IpaEventPayload<
  S extends IpaInterfaceSpec,
  E extends keyof S["events"],
> = IpaValue<S["events"][E]>;

/** The payload of event `E`, as the IPA emits it. */
export type IpaEventPayloadInit<
  S extends IpaInterfaceSpec,
  E extends keyof S["events"],
> = IpaValueInit<S["events"][E]>;

/**
 * The methods as the caller sees them through a proxy: sync methods return
 * their result (the caller blocks), async methods return nothing (queued).
 */
export type IpaMethods<S extends IpaInterfaceSpec> = {
  readonly [M in keyof S["methods"]]: S["methods"][M]["sync"] extends true
    ? IpaMethodFn<IpaParamsInit<S, M>, IpaResult<S, M>>
    : IpaMethodFn<IpaParamsInit<S, M>, void>;
};

/** A method taking `P`; `P` may be left out when it has no required field. */
export type IpaMethodFn<P, R> = Record<never, never> extends P
  ? (params?: P) => R
  : (params: P) => R;

/** What an IPA module implements: every method, possibly async. */
export type IpaImplementation<S extends IpaInterfaceSpec> = {
  [M in keyof S["methods"]]: (
    params: IpaParams<S, M>,
  ) => IpaResultInit<S, M> | Promise<IpaResultInit<S, M>>;
};

/** What an IPA implementation gets from its host. */
export interface IpaContext<S extends IpaInterfaceSpec> {
  /**
   * Sends an event to the owner (dropped by the proxy when the IPA is not
   * running). Descriptors in the payload are handed over: `OwnedFd`s are
   * closed here once sent.
   */
  emit<E extends keyof S["events"] & string>(
    event: E,
    payload: IpaEventPayloadInit<S, E>,
  ): void;
}
