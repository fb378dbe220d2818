/**
 * IPA modules: what one exports, how its detached signature is made and
 * checked (Ed25519 through WebCrypto), and the errors that name a bad
 * module.
 *
 * A module is an ES module that exports
 * - `ipaModuleInfo`: `{ name, pipelineName, apiVersion }`, and
 * - `createIpa(context)`: a factory returning the implementation of every
 *   method of the interface it is written for.
 *
 * Its signature is a file beside it, `<module>.sign`: the 64-byte Ed25519
 * signature (RFC 8032) of the module file's bytes. Only the module file is
 * covered: a trusted module must not import code that is not itself part
 * of the file.
 *
 * @module
 */
import type {
  IpaContext,
  IpaImplementation,
  IpaInterfaceSpec,
} from "./ipa_schema.ts";
import {
  checkPublicKey,
  describeValue,
  ED25519_PUBLIC_KEY_BYTES,
} from "./_ipa_options.ts";

/** What a module says about itself (libcamera's `IPAModuleInfo`). */
export interface IpaModuleInfo {
  /** The module's name, e.g. `"vendor-ae-awb"`. */
  name: string;
  /** The pipeline handler it serves, e.g. `"simple"`. */
  pipelineName: string;
  /** The interface version it implements. */
  apiVersion: number;
}

/** The shape of a loaded IPA module. */
export interface IpaModule<S extends IpaInterfaceSpec = IpaInterfaceSpec> {
  /** The module's description. */
  ipaModuleInfo: IpaModuleInfo;
  /** Makes the implementation. */
  createIpa(context: IpaContext<S>): IpaImplementation<S>;
}

/**
 * A module cannot be used: it failed to load, lacks an export, or
 * implements another version. The message names the module.
 *
 * @example
 * ```ts
 * import { IpaModuleError } from "@isola/isola";
 *
 * const e = new IpaModuleError("file:///ipa/x.ts", "has no createIpa");
 * console.log(e.message); // "IPA module file:///ipa/x.ts has no createIpa"
 * ```
 */
export class IpaModuleError extends Error {
  /** The module's URL or path. */
  readonly module: string;

  /**
   * Builds the error.
   *
   * @param module The module's URL or path.
   * @param problem What is wrong, as the end of a sentence.
   * @param options The cause.
   */
  constructor(module: string, problem: string, options?: ErrorOptions) {
    super(`IPA module ${module} ${problem}`, options);
    this.name = "IpaModuleError";
    this.module = module;
  }
}

/**
 * Checks the exports of an imported module.
 *
 * @param ns The module namespace object.
 * @param where The module's URL, for messages.
 * @returns The module.
 * @throws {IpaModuleError} If `ipaModuleInfo` or `createIpa` is missing or
 *   malformed.
 *
 * @example
 * ```ts
 * import { checkIpaModule } from "@isola/isola";
 *
 * const m = checkIpaModule({
 *   ipaModuleInfo: { name: "x", pipelineName: "p", apiVersion: 1 },
 *   createIpa: () => ({}),
 * }, "inline");
 * console.log(m.ipaModuleInfo.name); // "x"
 * ```
 */
export function checkIpaModule(ns: unknown, where: string): IpaModule {
  const m = ns as Partial<IpaModule> | null;
  const info = m?.ipaModuleInfo;
  if (info === undefined || info === null || typeof info !== "object") {
    throw new IpaModuleError(where, "does not export ipaModuleInfo");
  }
  for (const key of ["name", "pipelineName"] as const) {
    if (typeof info[key] !== "string" || info[key] === "") {
      throw new IpaModuleError(where, `has no ipaModuleInfo.${key} string`);
    }
  }
  if (!Number.isInteger(info.apiVersion) || info.apiVersion < 1) {
    throw new IpaModuleError(
      where,
      "has no ipaModuleInfo.apiVersion (a positive integer)",
    );
  }
  if (typeof m?.createIpa !== "function") {
    throw new IpaModuleError(where, "does not export a createIpa factory");
  }
  return m as IpaModule;
}

/** Bytes of an Ed25519 signature (RFC 8032, section 5.1.6). */
const ED25519_SIGNATURE_BYTES = 64;

/**
 * Where a module's detached signature lives.
 *
 * @param modulePath The module's path.
 * @returns The signature's path: the module's, plus `.sign`.
 *
 * @example
 * ```ts
 * import { signaturePath } from "@isola/isola";
 *
 * console.log(signaturePath("ipa/awb.ts")); // "ipa/awb.ts.sign"
 * ```
 */
export function signaturePath(modulePath: string): string {
  return `${modulePath}.sign`;
}

/**
 * Makes an Ed25519 key pair for signing IPA modules.
 *
 * @returns The private key (PKCS #8) and the raw 32-byte public key.
 *
 * @example
 * ```ts
 * import { generateIpaSigningKey } from "@isola/isola";
 *
 * const { publicKey } = await generateIpaSigningKey();
 * console.log(publicKey.length); // 32
 * ```
 */
export async function generateIpaSigningKey(): Promise<
  { privateKey: Uint8Array; publicKey: Uint8Array }
> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return {
    privateKey: new Uint8Array(
      await crypto.subtle.exportKey("pkcs8", pair.privateKey),
    ),
    publicKey: new Uint8Array(
      await crypto.subtle.exportKey("raw", pair.publicKey),
    ),
  };
}

/**
 * Signs module bytes with an Ed25519 private key (PKCS #8).
 *
 * @param module The module file's bytes.
 * @param privateKey The PKCS #8 private key.
 * @returns The 64-byte signature, to store as `<module>.sign`.
 *
 * @example
 * ```ts
 * import { generateIpaSigningKey, signIpaModule, verifyIpaModule } from "@isola/isola";
 *
 * const keys = await generateIpaSigningKey();
 * const code = new TextEncoder().encode("export const x = 1;");
 * const sig = await signIpaModule(code, keys.privateKey);
 * console.log(await verifyIpaModule(code, sig, [keys.publicKey])); // true
 * ```
 */
export async function signIpaModule(
  module: Uint8Array,
  privateKey: Uint8Array,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "pkcs8",
    privateKey as Uint8Array<ArrayBuffer>,
    { name: "Ed25519" },
    false,
    ["sign"],
  );
  return new Uint8Array(
    await crypto.subtle.sign(
      { name: "Ed25519" },
      key,
      module as Uint8Array<ArrayBuffer>,
    ),
  );
}

/**
 * Checks a module's signature against trusted raw Ed25519 public keys.
 *
 * @param module The module file's bytes.
 * @param signature The detached signature.
 * @param trustedKeys Raw 32-byte public keys.
 * @returns Whether any key verifies the signature (a signature that is not
 *   64 bytes verifies against none).
 * @throws {RangeError} If a key is not 32 bytes.
 * @throws {TypeError} If a key is not a `Uint8Array`.
 *
 * @example
 * ```ts
 * import { verifyIpaModule } from "@isola/isola";
 *
 * console.log(await verifyIpaModule(new Uint8Array(1), new Uint8Array(64), [])); // false
 * ```
 */
export async function verifyIpaModule(
  module: Uint8Array,
  signature: Uint8Array,
  trustedKeys: readonly Uint8Array[],
): Promise<boolean> {
  trustedKeys.forEach((k, i) => checkPublicKey(k, `trustedKeys[${i}]`));
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  for (const raw of trustedKeys) {
    const key = await crypto.subtle.importKey(
      "raw",
      raw as Uint8Array<ArrayBuffer>,
      { name: "Ed25519" },
      false,
      ["verify"],
    );
    const ok = await crypto.subtle.verify(
      { name: "Ed25519" },
      key,
      signature as Uint8Array<ArrayBuffer>,
      module as Uint8Array<ArrayBuffer>,
    );
    if (ok) return true;
  }
  return false;
}

/**
 * Reads an Ed25519 public key file as `deno task ipa-sign keygen` writes it
 * (`<name>.pub`: the raw 32-byte key in base64, one line), or a file
 * holding the 32 raw bytes.
 *
 * @param path The file.
 * @returns The raw 32-byte key, for {@linkcode IpaManagerOptions.trustedKeys}.
 * @throws {RangeError} If the file holds no 32-byte key (the message names
 *   the file).
 * @throws {Deno.errors.NotFound} If the file does not exist.
 *
 * @example
 * ```ts
 * import { loadIpaPublicKey } from "@isola/isola";
 *
 * const key = await loadIpaPublicKey("./examples/keys/example_ipa.pub");
 * console.log(key.length); // 32
 * ```
 */
export async function loadIpaPublicKey(
  path: string | URL,
): Promise<Uint8Array> {
  if (typeof path !== "string" && !(path instanceof URL)) {
    throw new TypeError(
      `Cannot load IPA public key: path must be a string or URL, not ${
        describeValue(path)
      }`,
    );
  }
  const bytes = await Deno.readFile(path);
  if (bytes.length === ED25519_PUBLIC_KEY_BYTES) return bytes;
  const key = decodeBase64(new TextDecoder().decode(bytes));
  return checkPublicKey(key, `Cannot load IPA public key: ${path}`);
}

/** Base64 text (surrounding whitespace allowed); empty when malformed. */
function decodeBase64(text: string): Uint8Array {
  try {
    return Uint8Array.from(atob(text.trim()), (c) => c.charCodeAt(0));
  } catch {
    return new Uint8Array(0);
  }
}
