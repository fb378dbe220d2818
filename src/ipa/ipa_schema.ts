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
import type { FdLike } from "../fd/owned_fd.ts";

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
 * The JavaScript type of values of an {@linkcode IpaType}: integers up to
 * 32 bits and floats are `number`, 64-bit integers `bigint`, `bytes` a
 * `Uint8Array`, `fd` an {@linkcode FdLike} (received ones are `OwnedFd`),
 * `controls` a {@linkcode ControlList}; optional struct fields may be left
 * out.
 */
export type IpaValue<T> = T extends IpaScalarType<infer K> ? IpaScalarValue<K>
  : T extends IpaArrayType<infer E> ? IpaValue<E>[]
  : T extends IpaMapType<infer K, infer V> ? Map<IpaValue<K>, IpaValue<V>>
  : T extends IpaOptionalType<infer E> ? IpaValue<E> | undefined
  : T extends IpaStructType<infer F> ? IpaSimplify<
      & { [K in IpaRequiredKeys<F>]: IpaValue<F[K]> }
      & { [K in IpaOptionalKeys<F>]?: IpaValue<F[K]> }
    >
  : never;

/** The JavaScript type of a leaf kind. */
export type IpaScalarValue<K extends IpaScalarKind> = K extends "bool" ? boolean
  : K extends "u64" | "i64" ? bigint
  : K extends "string" ? string
  : K extends "bytes" ? Uint8Array
  : K extends "fd" ? FdLike
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
 * Declares an IPA interface. Method and event numbers on the wire follow
 * declaration order.
 *
 * @param spec Name, version, methods and events.
 * @returns The frozen interface.
 * @throws {TypeError} If a name is empty or the version not a positive
 *   integer.
 *
 * @example
 * ```ts
 * import { defineIpaInterface, T } from "@isola/isola";
 *
 * const Echo = defineIpaInterface({
 *   name: "echo",
 *   version: 1,
 *   methods: {
 *     echo: { sync: true, params: T.struct({ text: T.string }), result: T.string },
 *     poke: { sync: false, params: T.struct({}) },
 *   },
 *   events: { poked: T.struct({ count: T.u32 }) },
 * });
 * console.log(Echo.methodNames); // [ "echo", "poke" ]
 * ```
 */
export function defineIpaInterface<const S extends IpaInterfaceSpec>(
  spec: S,
): IpaInterface<S> {
  if (typeof spec.name !== "string" || spec.name === "") {
    throw new TypeError("Cannot define IPA interface: empty name");
  }
  if (!Number.isInteger(spec.version) || spec.version < 1) {
    throw new TypeError(
      `Cannot define IPA interface ${spec.name}: version must be a positive integer`,
    );
  }
  for (const [m, def] of Object.entries(spec.methods)) {
    if (def.params?.kind !== "struct") {
      throw new TypeError(
        `Cannot define IPA interface ${spec.name}: ${m}'s params must be T.struct(...)`,
      );
    }
    if (!def.sync && def.result !== undefined) {
      throw new TypeError(
        `Cannot define IPA interface ${spec.name}: async method ${m} cannot have a result`,
      );
    }
  }
  return Object.freeze({
    ...spec,
    methodNames: Object.freeze(Object.keys(spec.methods)),
    eventNames: Object.freeze(Object.keys(spec.events)),
  }) as IpaInterface<S>;
}

/** The parameters of method `M`. */
export type IpaParams<
  S extends IpaInterfaceSpec,
  M extends keyof S["methods"],
> = IpaValue<S["methods"][M]["params"]>;

/** The result of method `M` (`void` without one). */
export type IpaResult<
  S extends IpaInterfaceSpec,
  M extends keyof S["methods"],
> = S["methods"][M]["result"] extends IpaType
  ? IpaValue<S["methods"][M]["result"]>
  : void;

/** The payload of event `E`. */
export type IpaEventPayload<
  S extends IpaInterfaceSpec,
  E extends keyof S["events"],
> = IpaValue<S["events"][E]>;

/**
 * The methods as the caller sees them through a proxy: sync methods return
 * their result (the caller blocks), async methods return nothing (queued).
 */
export type IpaMethods<S extends IpaInterfaceSpec> = {
  readonly [M in keyof S["methods"]]: S["methods"][M]["sync"] extends true
    ? IpaMethodFn<IpaParams<S, M>, IpaResult<S, M>>
    : IpaMethodFn<IpaParams<S, M>, void>;
};

/** A method taking `P`; `P` may be left out when it has no required field. */
export type IpaMethodFn<P, R> = Record<never, never> extends P
  ? (params?: P) => R
  : (params: P) => R;

/** What an IPA module implements: every method, possibly async. */
export type IpaImplementation<S extends IpaInterfaceSpec> = {
  [M in keyof S["methods"]]: (
    params: IpaParams<S, M>,
  ) => IpaResult<S, M> | Promise<IpaResult<S, M>>;
};

/** What an IPA implementation gets from its host. */
export interface IpaContext<S extends IpaInterfaceSpec> {
  /**
   * Sends an event to the owner (dropped by the proxy when the IPA is not
   * running).
   */
  emit<E extends keyof S["events"] & string>(
    event: E,
    payload: IpaEventPayload<S, E>,
  ): void;
}
