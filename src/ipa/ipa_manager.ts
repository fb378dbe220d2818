/**
 * {@linkcode IpaManager}: finds IPA modules and creates their proxies, in a
 * thread when the module's signature verifies against a trusted key,
 * isolated otherwise (libcamera's `IPAManager` rule).
 *
 * @module
 */
import {
  IpaModuleError,
  signaturePath,
  verifyIpaModule,
} from "./ipa_module.ts";
import {
  IpaPipelineMismatchError,
  type IpaPlacement,
  IpaProxyIsolated,
  type IpaProxyOf,
  type IpaProxyOptions,
  IpaProxyThread,
} from "./ipa_proxy.ts";
import { type IpaInterface, isIpaInterface } from "./ipa_schema.ts";
import { checkManagerOptions, describeValue } from "./_ipa_options.ts";

/**
 * Environment variable: extra module directories, `:`-separated, searched
 * after `modulePath`.
 *
 * @example
 * ```ts
 * import { IPA_MODULE_PATH_ENV, IpaManager } from "@isola/isola";
 *
 * Deno.env.set(IPA_MODULE_PATH_ENV, "/opt/ipa:/usr/lib/ipa");
 * console.log(new IpaManager().modulePath); // [ "/opt/ipa", "/usr/lib/ipa" ]
 * Deno.env.delete(IPA_MODULE_PATH_ENV);
 * ```
 */
export const IPA_MODULE_PATH_ENV = "ISOLA_IPA_MODULE_PATH";
/**
 * Environment variable: any non-empty value isolates every module.
 *
 * @example
 * ```ts
 * import { IPA_FORCE_ISOLATION_ENV } from "@isola/isola";
 *
 * console.log(IPA_FORCE_ISOLATION_ENV); // "ISOLA_IPA_FORCE_ISOLATION"
 * ```
 */
export const IPA_FORCE_ISOLATION_ENV = "ISOLA_IPA_FORCE_ISOLATION";

const MODULE_EXTENSIONS = [".ts", ".js", ".mjs", ".mts"];

/**
 * Options of {@linkcode IpaManager}. Each is checked: a wrong type is a
 * `TypeError` naming the option.
 */
export interface IpaManagerOptions extends
  Pick<
    IpaProxyOptions,
    | "isolate"
    | "allowUnisolated"
    | "denoFlags"
    | "env"
    | "filesystem"
    | "config"
    | "lock"
    | "timeout"
    | "warmUp"
    | "keepWarm"
  > {
  /** Directories to search, before those of `ISOLA_IPA_MODULE_PATH`. */
  modulePath?: readonly string[];
  /**
   * Raw Ed25519 public keys (32 bytes) whose signatures are trusted; read
   * `.pub` files with {@linkcode loadIpaPublicKey}. Another length is a
   * `RangeError`.
   */
  trustedKeys?: readonly Uint8Array[];
  /**
   * Isolate every module. Default: `ISOLA_IPA_FORCE_ISOLATION` is set and
   * not empty.
   */
  forceIsolation?: boolean;
}

/** A module file found in the search path. */
export interface IpaModuleEntry {
  /** Its path. */
  path: string;
  /** Where it would run: thread if its signature verifies. */
  placement: IpaPlacement;
}

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: the variable does not count
  }
}

/**
 * Finds IPA modules and creates proxies for them.
 *
 * @example
 * ```ts
 * import { CameraIpa, IpaManager, loadIpaPublicKey } from "@isola/isola";
 *
 * const manager = new IpaManager({
 *   modulePath: ["./examples/ipa"],
 *   // A demonstration key: its private half is public.
 *   trustedKeys: [await loadIpaPublicKey("./examples/keys/example_ipa.pub")],
 * });
 * // open_ae_awb.ts is signed with that key: it runs in a thread.
 * await using ipa = await manager.createIpa(CameraIpa, "simple");
 * console.log(ipa.info.name, ipa.placement); // open-ae-awb thread
 * ```
 */
export class IpaManager {
  readonly #paths: string[];
  readonly #keys: readonly Uint8Array[];
  readonly #force: boolean;
  readonly #options: IpaManagerOptions;

  /**
   * Makes a manager.
   *
   * @param options Search path, trusted keys, isolation.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If a trusted key is not 32 bytes.
   */
  constructor(options: IpaManagerOptions = {}) {
    checkManagerOptions(options);
    const fromEnv = (envGet(IPA_MODULE_PATH_ENV) ?? "").split(":").filter((
      p,
    ) => p !== "");
    this.#paths = [...(options.modulePath ?? []), ...fromEnv];
    this.#keys = options.trustedKeys ?? [];
    this.#force = options.forceIsolation ??
      ((envGet(IPA_FORCE_ISOLATION_ENV) ?? "") !== "");
    this.#options = options;
  }

  /** The directories searched, in order. */
  get modulePath(): readonly string[] {
    return [...this.#paths];
  }

  /**
   * Lists the module files of the search path and where each would run.
   *
   * @returns One entry per file, in search order (sorted per directory).
   */
  async modules(): Promise<IpaModuleEntry[]> {
    const out: IpaModuleEntry[] = [];
    for (const dir of this.#paths) {
      let names: string[];
      try {
        names = [...Deno.readDirSync(dir)]
          .filter((e) => e.isFile && !e.name.startsWith("_"))
          .map((e) => e.name)
          .filter((n) => MODULE_EXTENSIONS.some((x) => n.endsWith(x)))
          .sort();
      } catch {
        continue; // a missing directory is not an error (libcamera's rule)
      }
      for (const name of names) {
        const path = `${dir.replace(/\/$/, "")}/${name}`;
        out.push({ path, placement: await this.#placement(path) });
      }
    }
    return out;
  }

  async #placement(path: string): Promise<IpaPlacement> {
    if (this.#force || this.#keys.length === 0) return "isolated";
    let code: Uint8Array, sig: Uint8Array;
    try {
      code = await Deno.readFile(path);
      sig = await Deno.readFile(signaturePath(path));
    } catch {
      return "isolated";
    }
    return (await verifyIpaModule(code, sig, this.#keys))
      ? "thread"
      : "isolated";
  }

  /**
   * Creates the proxy of the first module that serves `pipelineName` and
   * implements `iface`'s version.
   *
   * @param iface The interface.
   * @param pipelineName The pipeline handler's name.
   * @returns The proxy (thread for a verified module, else isolated).
   * @throws {IpaModuleError} If no module matches; if one serves the
   *   pipeline but is unusable (wrong version, no factory, throws while
   *   loading), the error names it.
   * @throws {TypeError} If `iface` was not made by `defineIpaInterface` or
   *   `pipelineName` is not a non-empty string.
   */
  async createIpa<I extends IpaInterface>(
    iface: I,
    pipelineName: string,
  ): Promise<IpaProxyOf<I>> {
    if (!isIpaInterface(iface)) {
      throw new TypeError(
        `Cannot create IPA: the interface must be made by defineIpaInterface, not ${
          describeValue(iface)
        }`,
      );
    }
    if (typeof pipelineName !== "string" || pipelineName === "") {
      throw new TypeError(
        `Cannot create IPA: pipelineName must be a non-empty string, not ${
          describeValue(pipelineName)
        }`,
      );
    }
    const o = this.#options;
    const options: IpaProxyOptions = {
      pipelineName,
      timeout: o.timeout,
      isolate: o.isolate,
      allowUnisolated: o.allowUnisolated,
      denoFlags: o.denoFlags,
      env: o.env,
      filesystem: o.filesystem,
      config: o.config,
      lock: o.lock,
      warmUp: o.warmUp,
      keepWarm: o.keepWarm,
    };
    const problems: IpaModuleError[] = [];
    for (const m of await this.modules()) {
      try {
        return m.placement === "thread"
          ? await IpaProxyThread.create(iface, m.path, options)
          : await IpaProxyIsolated.create(iface, m.path, options);
      } catch (e) {
        if (e instanceof IpaPipelineMismatchError) continue;
        if (e instanceof IpaModuleError) {
          problems.push(e);
          continue;
        }
        throw e;
      }
    }
    if (problems.length === 1) throw problems[0];
    const why = problems.length === 0
      ? ""
      : `; unusable: ${problems.map((p) => p.message).join("; ")}`;
    throw new IpaModuleError(
      `for pipeline ${pipelineName}`,
      `not found in ${this.#paths.join(":") || "(empty search path)"}${why}`,
    );
  }
}
