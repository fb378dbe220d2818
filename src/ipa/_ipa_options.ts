// Run-time checks of the IPA layer's public options: a caller's mistake is a
// TypeError or RangeError naming the option, before anything is started.
import { isIpaInterface } from "./ipa_schema.ts";

/** Bytes of a raw Ed25519 public key (RFC 8032, section 5.1.5). */
export const ED25519_PUBLIC_KEY_BYTES = 32;

type Fail = (option: string, problem: string, Err?: ErrorConstructor) => never;

export function optionFail(action: string): Fail {
  return (option, problem, Err = TypeError) => {
    throw new Err(`${action}: options.${option} ${problem}`);
  };
}

export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "object") return `an object (${v.constructor?.name})`;
  return `${typeof v} ${String(v)}`;
}

export function checkOptionsObject(o: unknown, action: string): void {
  if (
    o !== undefined && (typeof o !== "object" || o === null || Array.isArray(o))
  ) {
    throw new TypeError(
      `${action}: options must be an object, not ${describeValue(o)}`,
    );
  }
}

export function checkBoolean(v: unknown, option: string, fail: Fail): void {
  if (v !== undefined && typeof v !== "boolean") {
    fail(option, `must be true or false, not ${describeValue(v)}`);
  }
}

export function checkString(v: unknown, option: string, fail: Fail): void {
  if (v !== undefined && (typeof v !== "string" || v === "")) {
    fail(option, `must be a non-empty string, not ${describeValue(v)}`);
  }
}

/** A path option that may also be `false` (config, lock). */
function checkPathOrFalse(v: unknown, option: string, fail: Fail): void {
  if (v !== false) checkString(v, option, fail);
}

export function checkStrings(v: unknown, option: string, fail: Fail): void {
  if (v === undefined) return;
  if (!Array.isArray(v)) {
    fail(option, `must be an array of strings, not ${describeValue(v)}`);
  }
  v.forEach((s, i) => checkString(s, `${option}[${i}]`, fail));
}

export function checkTimeoutOption(v: unknown, option: string, fail: Fail) {
  if (v === undefined) return;
  if (typeof v !== "number") {
    fail(option, `must be a number of milliseconds, not ${describeValue(v)}`);
  }
  if (Number.isNaN(v) || v < 0) {
    fail(option, `must be >= 0 ms, not ${v}`, RangeError);
  }
}

export function checkCount(v: unknown, option: string, fail: Fail): void {
  if (v === undefined) return;
  if (typeof v !== "number") {
    fail(option, `must be a number, not ${describeValue(v)}`);
  }
  if (!Number.isInteger(v) || v < 0) {
    fail(option, `must be an integer >= 0, not ${v}`, RangeError);
  }
}

export function checkIsolate(v: unknown, option: string, fail: Fail): void {
  if (v === undefined || typeof v === "boolean") return;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    fail(
      option,
      `must be true, false or a ProcessIsolation object, not ${
        describeValue(v)
      }`,
    );
  }
}

export function checkDenoFlags(v: unknown, option: string, fail: Fail): void {
  checkStrings(v, option, fail);
  (v as string[] | undefined)?.forEach((flag, i) => {
    // Anything else would be taken for the script to run.
    if (!flag.startsWith("-")) {
      fail(`${option}[${i}]`, `${JSON.stringify(flag)} is not a flag (--...)`);
    }
  });
}

export function checkEnv(v: unknown, option: string, fail: Fail): void {
  if (v === undefined) return;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    fail(option, `must be an object of strings, not ${describeValue(v)}`);
  }
  for (const [name, value] of Object.entries(v)) {
    if (name === "" || name.includes("=") || name.includes("\0")) {
      fail(option, `has an invalid variable name ${JSON.stringify(name)}`);
    }
    if (typeof value !== "string") {
      fail(
        `${option}.${name}`,
        `must be a string, not ${describeValue(value)}`,
      );
    }
  }
}

export function checkFilesystem(v: unknown, option: string, fail: Fail): void {
  if (v === undefined || v === false) return;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    fail(
      option,
      `must be false or { read?, write? }, not ${describeValue(v)}`,
    );
  }
  const fs = v as { read?: unknown; write?: unknown };
  checkStrings(fs.read, `${option}.read`, fail);
  checkStrings(fs.write, `${option}.write`, fail);
}

/** A raw Ed25519 public key, or a RangeError/TypeError naming `what`. */
export function checkPublicKey(key: unknown, what: string): Uint8Array {
  if (!(key instanceof Uint8Array)) {
    throw new TypeError(
      `${what} must be a Uint8Array (a raw Ed25519 public key), not ${
        describeValue(key)
      }`,
    );
  }
  if (key.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw new RangeError(
      `${what} is ${key.length} bytes, not a ${ED25519_PUBLIC_KEY_BYTES}-byte Ed25519 public key (read a .pub file with loadIpaPublicKey)`,
    );
  }
  return key;
}

/** Checks the arguments of the proxies' `create()`. */
export function checkProxyArgs(
  iface: unknown,
  module: unknown,
  options: unknown,
  action: string,
): void {
  if (!isIpaInterface(iface)) {
    throw new TypeError(
      `${action}: the interface must be made by defineIpaInterface, not ${
        describeValue(iface)
      }`,
    );
  }
  if (
    !(module instanceof URL) && (typeof module !== "string" || module === "")
  ) {
    throw new TypeError(
      `${action}: module must be a path or URL, not ${describeValue(module)}`,
    );
  }
  checkOptionsObject(options, action);
  const o = (options ?? {}) as Record<string, unknown>;
  const fail = optionFail(action);
  checkTimeoutOption(o.timeout, "timeout", fail);
  checkString(o.pipelineName, "pipelineName", fail);
  checkIsolate(o.isolate, "isolate", fail);
  checkBoolean(o.allowUnisolated, "allowUnisolated", fail);
  checkDenoFlags(o.denoFlags, "denoFlags", fail);
  checkEnv(o.env, "env", fail);
  checkFilesystem(o.filesystem, "filesystem", fail);
  checkCount(o.warmUp, "warmUp", fail);
  checkBoolean(o.keepWarm, "keepWarm", fail);
  checkPathOrFalse(o.config, "config", fail);
  checkPathOrFalse(o.lock, "lock", fail);
}

/** Checks the options of `new IpaManager()`. */
export function checkManagerOptions(options: unknown): void {
  const action = "Cannot create IpaManager";
  checkOptionsObject(options, action);
  const o = (options ?? {}) as Record<string, unknown>;
  const fail = optionFail(action);
  checkStrings(o.modulePath, "modulePath", fail);
  if (o.trustedKeys !== undefined) {
    if (!Array.isArray(o.trustedKeys)) {
      fail(
        "trustedKeys",
        `must be an array of Uint8Array keys, not ${
          describeValue(o.trustedKeys)
        }`,
      );
    }
    (o.trustedKeys as unknown[]).forEach((k, i) =>
      checkPublicKey(k, `${action}: options.trustedKeys[${i}]`)
    );
  }
  checkBoolean(o.forceIsolation, "forceIsolation", fail);
  checkIsolate(o.isolate, "isolate", fail);
  checkBoolean(o.allowUnisolated, "allowUnisolated", fail);
  checkDenoFlags(o.denoFlags, "denoFlags", fail);
  checkTimeoutOption(o.timeout, "timeout", fail);
  checkEnv(o.env, "env", fail);
  checkFilesystem(o.filesystem, "filesystem", fail);
  checkCount(o.warmUp, "warmUp", fail);
  checkBoolean(o.keepWarm, "keepWarm", fail);
  checkPathOrFalse(o.config, "config", fail);
  checkPathOrFalse(o.lock, "lock", fail);
}
