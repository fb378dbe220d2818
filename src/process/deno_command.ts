/**
 * The command line of a Deno worker script run in a child process: the
 * same config, lock file and import map as this process, every module it
 * will load fetched into the Deno cache beforehand, and the list of paths
 * it must be able to read. A child in a network namespace cannot fetch
 * anything, so a worker entry served over HTTP (isola imported from JSR or
 * a URL) or a module importing a package must already be in the cache it
 * reads; and a child that does not get the application's config resolves
 * no bare specifier of its import map.
 *
 * @module
 */
import { environStrings, O, open } from "../../ffi/spawn.ts";
import { close, read, readlink } from "../../ffi/unistd.ts";
import { fileDirOf, fromFileUrl, toFileUrl } from "../common/_file_url.ts";
import { Process } from "./process.ts";

/** Config file names Deno looks for, in its order. */
const CONFIG_NAMES = ["deno.json", "deno.jsonc"];
/** The lock file Deno writes beside a config unless told otherwise. */
const DEFAULT_LOCK_NAME = "deno.lock";
/** Directories beside the config that hold packages when configured. */
const PACKAGE_DIRS = ["node_modules", "vendor"];
/** Bytes read at a time from a file. */
const READ_CHUNK = 65536;

/** Options of {@linkcode denoWorkerCommand} and {@linkcode denoWorkerPaths}. */
export interface DenoWorkerOptions {
  /**
   * Extra `deno run` flags, permissions first of all (e.g. `--allow-ffi`
   * for a pipe worker). The command always has `--no-prompt`.
   */
  flags?: readonly string[];
  /**
   * The config file (deno.json) the worker uses: a path, or `false` for
   * none. Default: this process's (its `--config`, else the one Deno found
   * for it: beside the main module or the working directory, or above).
   */
  config?: string | false;
  /**
   * The lock file: a path, or `false` for none. Default: this process's
   * (its `--lock`, else the config's `lock` field, else `deno.lock` beside
   * the config).
   */
  lock?: string | false;
  /**
   * Modules the worker will import at run time (an IPA module, say):
   * fetched into the cache with the script, their directories readable.
   */
  modules?: readonly (string | URL)[];
  /**
   * Fetch the script's and the modules' imports into the Deno cache before
   * (once per process for the same inputs), and run the worker with
   * `--cached-only`. Default true.
   */
  cache?: boolean;
}

/** What {@linkcode denoWorkerCommand} returns: a `Process.spawn` input. */
export interface DenoWorkerCommand {
  /** The Deno executable (`Deno.execPath()`). */
  path: string;
  /** `run`, the flags, the script. */
  args: string[];
  /** Variables the worker needs (`DENO_DIR`: the cache this process uses). */
  env: Record<string, string>;
  /** What it must read; see {@linkcode denoWorkerPaths}. */
  readPaths: string[];
}

/** `deno cache` failed: a module of the worker cannot be fetched. */
export class DenoCacheError extends Error {
  /** The modules that were to be cached. */
  readonly modules: readonly string[];

  /**
   * Builds the error.
   *
   * @param modules The modules.
   * @param why Deno's message.
   */
  constructor(modules: readonly string[], why: string) {
    super(`Cannot cache ${modules.join(", ")}: ${why}`);
    this.name = "DenoCacheError";
    this.modules = modules;
  }
}

/** The config, lock file and import map a Deno process runs with. */
interface DenoSetup {
  config: string | null;
  lock: string | null;
  importMap: string | null;
  frozen: boolean;
  /** This process's `--allow-import` (`""`: any host), null if none. */
  allowImport: string | null;
}

/** Reads a file through libc: no `--allow-read` needed for /proc/self. */
function readText(path: string): string | null {
  const fd = open(path, O.O_RDONLY | O.O_CLOEXEC);
  if (fd < 0) return null;
  try {
    const chunks: Uint8Array[] = [];
    for (;;) {
      const buf = new Uint8Array(READ_CHUNK);
      const n = read(fd, buf);
      if (n <= 0) break;
      chunks.push(buf.subarray(0, n));
    }
    const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(out);
  } finally {
    close(fd);
  }
}

/** The working directory, without needing `--allow-read` (`Deno.cwd()` does). */
function workingDir(): string {
  const dir = readlink("/proc/self/cwd");
  return typeof dir === "string" ? dir : Deno.cwd();
}

function exists(path: string): boolean {
  const fd = open(path, O.O_RDONLY | O.O_CLOEXEC);
  if (fd < 0) return false;
  close(fd);
  return true;
}

function absolute(path: string, base: string): string {
  return path.startsWith("/") ? path : `${base.replace(/\/$/, "")}/${path}`;
}

function parentOf(path: string): string {
  return path.replace(/\/[^/]*$/, "") || "/";
}

/** JSONC (comments, trailing commas) to a value, or null if malformed. */
function parseJsonc(text: string): unknown {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const end = /"(?:[^"\\]|\\.)*"/y;
      end.lastIndex = i;
      const m = end.exec(text);
      if (m === null) return null;
      out += m[0];
      i += m[0].length - 1;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 1;
    } else out += c;
  }
  try {
    return JSON.parse(out.replace(/,(\s*[}\]])/g, "$1"));
  } catch {
    return null;
  }
}

function readJson(path: string): Record<string, unknown> {
  const v = parseJsonc(readText(path) ?? "");
  return v !== null && typeof v === "object"
    ? v as Record<string, unknown>
    : {};
}

/** Deno subcommands whose file arguments end at the first one. */
const RUN_LIKE = new Set(["run", "serve"]);
/** Deno subcommands (the first argument that is not a flag). */
const SUBCOMMANDS = new Set([
  "run",
  "serve",
  "test",
  "bench",
  "task",
  "eval",
  "repl",
  "check",
  "compile",
  "doc",
  "lint",
  "fmt",
  "info",
  "cache",
  "install",
]);
/** Flags that take their value as the next argument. */
const VALUE_FLAGS = new Set(["-c", "--config", "--import-map", "--location"]);

/** The config-related flags of this process's command line. */
function commandLineFlags(): Map<string, string | true> {
  const argv = (readText("/proc/self/cmdline") ?? "").split("\0");
  const flags = new Map<string, string | true>();
  let runLike = true;
  let i = 1;
  if (SUBCOMMANDS.has(argv[1])) {
    runLike = RUN_LIKE.has(argv[1]);
    i = 2;
  }
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") break;
    if (!a.startsWith("-")) {
      if (runLike) break; // the script: what follows is its arguments
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (eq > 0) flags.set(name, a.slice(eq + 1));
    else if (VALUE_FLAGS.has(name) && i + 1 < argv.length) {
      flags.set(name, argv[++i]);
    } else flags.set(name, true);
  }
  return flags;
}

function findConfig(dir: string): string | null {
  for (let d = dir;; d = parentOf(d)) {
    for (const name of CONFIG_NAMES) {
      if (exists(`${d}/${name}`)) return `${d}/${name}`.replace(/^\/\//, "/");
    }
    if (d === "/") return null;
  }
}

let setupMemo: DenoSetup | undefined;

/** The config, lock and import map of this process, as Deno found them. */
function processSetup(): DenoSetup {
  if (setupMemo !== undefined) return setupMemo;
  const flags = commandLineFlags();
  const cwd = workingDir();
  const value = (...names: string[]) => {
    for (const n of names) {
      const v = flags.get(n);
      if (typeof v === "string") return absolute(v, cwd);
    }
    return null;
  };
  let config: string | null = null;
  if (!flags.has("--no-config")) {
    config = value("--config", "-c");
    if (config === null) {
      // `deno run` looks beside the main module, other subcommands in the
      // working directory; both then go up to the root.
      const main = fileDirOf(Deno.mainModule);
      config = (main !== null ? findConfig(main) : null) ?? findConfig(cwd);
    }
  }
  let lock: string | null = null;
  if (!flags.has("--no-lock")) {
    lock = value("--lock");
    if (lock === null && flags.get("--lock") === true) {
      lock = absolute(DEFAULT_LOCK_NAME, cwd);
    }
    if (lock === null && config !== null) lock = configLock(config);
  }
  setupMemo = {
    config,
    lock,
    importMap: value("--import-map"),
    frozen: flags.has("--frozen") && flags.get("--frozen") !== "false",
    allowImport: flags.has("--allow-all") || flags.has("-A") ||
        flags.get("--allow-import") === true
      ? ""
      : (flags.get("--allow-import") as string | undefined) ?? null,
  };
  return setupMemo;
}

/** The lock file a config asks for, or null for `"lock": false`. */
function configLock(config: string): string | null {
  const field = readJson(config).lock;
  const dir = parentOf(config);
  if (field === false) return null;
  if (typeof field === "string") return absolute(field, dir);
  if (field !== null && typeof field === "object") {
    const path = (field as { path?: unknown }).path;
    if (typeof path === "string") return absolute(path, dir);
  }
  return `${dir}/${DEFAULT_LOCK_NAME}`;
}

/** The setup for a worker: the options over this process's. */
function workerSetup(options: DenoWorkerOptions): DenoSetup {
  const own = processSetup();
  const cwd = workingDir();
  const config = options.config === undefined
    ? own.config
    : options.config === false
    ? null
    : absolute(options.config, cwd);
  const lock = options.lock === undefined
    ? (options.config === undefined
      ? own.lock
      : config === null
      ? null
      : configLock(config))
    : options.lock === false
    ? null
    : absolute(options.lock, cwd);
  return {
    config,
    lock,
    importMap: options.config === undefined ? own.importMap : null,
    frozen: own.frozen,
    allowImport: own.allowImport,
  };
}

/**
 * The Deno cache directory this process uses: `DENO_DIR`, else
 * `$XDG_CACHE_HOME/deno`, else `$HOME/.cache/deno` (Deno's rule on Linux).
 *
 * @returns Its absolute path.
 * @throws {Error} If none of those variables is set.
 */
export function denoCacheDir(): string {
  // Read through libc: the caller may not hold --allow-env for these.
  const env = new Map<string, string>();
  for (const s of environStrings()) {
    const eq = s.indexOf("=");
    if (eq > 0) env.set(s.slice(0, eq), s.slice(eq + 1));
  }
  const dir = env.get("DENO_DIR") ||
    (env.get("XDG_CACHE_HOME") ? `${env.get("XDG_CACHE_HOME")}/deno` : "") ||
    (env.get("HOME") ? `${env.get("HOME")}/.cache/deno` : "");
  if (dir === "") {
    throw new Error(
      "Cannot find the Deno cache: none of DENO_DIR, XDG_CACHE_HOME, HOME is set",
    );
  }
  return absolute(dir, workingDir());
}

/** Local targets of an import map's `imports` and `scopes`, as directories. */
function importMapTargets(map: Record<string, unknown>, base: URL): string[] {
  const out: string[] = [];
  const add = (entries: unknown) => {
    if (entries === null || typeof entries !== "object") return;
    for (const target of Object.values(entries)) {
      if (typeof target !== "string") continue;
      if (!/^(\.{1,2}\/|\/|file:)/.test(target)) continue;
      const url = new URL(target, base);
      out.push(
        target.endsWith("/")
          ? fromFileUrl(url).replace(/(.)\/$/, "$1")
          : fileDirOf(url)!,
      );
    }
  };
  add(map.imports);
  if (map.scopes !== null && typeof map.scopes === "object") {
    for (const scope of Object.values(map.scopes)) add(scope);
  }
  return out;
}

function scriptUrl(script: string | URL): URL {
  if (script instanceof URL) return script;
  if (/^[a-z][a-z0-9+.-]*:/i.test(script)) return new URL(script);
  if (script.startsWith("/")) return toFileUrl(script);
  throw new TypeError(
    `Cannot start Deno worker: script ${script} is relative; pass ` +
      `new URL("${script}", import.meta.url) to name it relative to your module`,
  );
}

/**
 * The paths a Deno worker must be able to read to run `script` with the
 * config this process uses: the Deno executable, the Deno cache (where
 * remote and npm modules are), the config file, the lock file, the import
 * map file and the directories of its local targets, the config's
 * `node_modules`/`vendor` when present, the script's directory and those
 * of `options.modules`. A jail (Landlock, a mount namespace) gives read
 * access to exactly these, plus the system libraries. A local module
 * that imports files outside these directories (`../shared/x.ts`) needs
 * those added by hand.
 *
 * @example The paths of a worker beside this module
 * ```ts
 * import { denoWorkerPaths } from "@isola/isola";
 *
 * const paths = denoWorkerPaths(new URL("./worker.ts", import.meta.url));
 * console.log(paths.includes(Deno.execPath())); // true
 * ```
 *
 * @param script The worker script: a URL, or an absolute path.
 * @param options Config, lock, other modules.
 * @returns Absolute paths, without duplicates.
 * @throws {TypeError} If `script` is a relative path.
 */
export function denoWorkerPaths(
  script: string | URL,
  options: DenoWorkerOptions = {},
): string[] {
  const setup = workerSetup(options);
  const paths: string[] = [Deno.execPath(), denoCacheDir()];
  if (setup.config !== null) {
    paths.push(setup.config);
    const json = readJson(setup.config);
    const dir = parentOf(setup.config);
    const configUrl = toFileUrl(setup.config);
    paths.push(...importMapTargets(json, configUrl));
    if (typeof json.importMap === "string" && setup.importMap === null) {
      setup.importMap = absolute(json.importMap, dir);
    }
    for (const name of PACKAGE_DIRS) {
      if (exists(`${dir}/${name}`)) paths.push(`${dir}/${name}`);
    }
  }
  if (setup.lock !== null && exists(setup.lock)) paths.push(setup.lock);
  if (setup.importMap !== null) {
    paths.push(setup.importMap);
    paths.push(
      ...importMapTargets(
        readJson(setup.importMap),
        toFileUrl(setup.importMap),
      ),
    );
  }
  for (const m of [script, ...(options.modules ?? [])]) {
    const dir = fileDirOf(scriptUrl(m));
    if (dir !== null) paths.push(dir);
  }
  return [...new Set(paths)];
}

function setupFlags(setup: DenoSetup, frozen: boolean): string[] {
  const flags = [
    setup.config === null ? "--no-config" : `--config=${setup.config}`,
  ];
  if (setup.lock === null) flags.push("--no-lock");
  else {
    flags.push(`--lock=${setup.lock}`);
    if (frozen) flags.push("--frozen");
  }
  if (setup.importMap !== null) flags.push(`--import-map=${setup.importMap}`);
  return flags;
}

const cached = new Map<string, Promise<void>>();

/** Runs `deno cache` once per set of inputs; a failure is not memoised. */
function cacheModules(
  modules: string[],
  setup: DenoSetup,
  denoDir: string,
): Promise<void> {
  // It may fetch from where this process may import (Deno's default hosts,
  // such as jsr.io, plus its --allow-import), no further.
  const allow = setup.allowImport === null ? [] : [
    setup.allowImport === ""
      ? "--allow-import"
      : `--allow-import=${setup.allowImport}`,
  ];
  const args = [
    "cache",
    "--quiet",
    ...setupFlags(setup, setup.frozen),
    ...allow,
    ...modules,
  ];
  const key = JSON.stringify([denoDir, args]);
  let p = cached.get(key);
  if (p === undefined) {
    p = (async () => {
      await using proc = Process.spawn(Deno.execPath(), {
        args,
        env: { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
        stderr: "capture",
      });
      const exit = await proc.exited;
      if (exit.kind !== "exited" || exit.code !== 0) {
        const text = new TextDecoder().decode(exit.stderr).trim();
        const why = text.split("\n").find((l) => /^error/i.test(l)) ?? text;
        throw new DenoCacheError(
          modules,
          why || `deno cache ended: ${JSON.stringify(exit)}`,
        );
      }
    })();
    cached.set(key, p);
    p.catch(() => cached.delete(key));
  }
  return p;
}

/**
 * Prepares the command that runs a Deno worker script in a child process
 * (for {@linkcode Process.spawn}, or `IpcPipeUnixSocket`): `deno run` with
 * this process's config, lock file and import map (so bare specifiers
 * resolve as they do here), `--no-prompt`, the given flags, and the
 * script, named by a URL or an absolute path: write
 * `new URL("./worker.ts", import.meta.url)` to name it relative to your
 * module, not the working directory. Unless `cache: false`, the script's
 * imports and `options.modules` are first fetched into the Deno cache
 * (`deno cache`, once per process for the same inputs), and the worker
 * runs with `--cached-only` and `--allow-import`: it can import only what
 * this process cached, and works without network, in a network namespace.
 *
 * @example A pipe worker beside this module
 * ```ts ignore
 * import { denoWorkerCommand, IpcPipeUnixSocket } from "@isola/isola";
 *
 * const cmd = await denoWorkerCommand(new URL("./worker.ts", import.meta.url), {
 *   flags: ["--allow-ffi"],
 * });
 * await using pipe = new IpcPipeUnixSocket(cmd.path, {
 *   args: cmd.args,
 *   env: cmd.env,
 *   isolate: { filesystem: { read: cmd.readPaths } },
 * });
 * ```
 *
 * @example The command line, without fetching
 * ```ts
 * import { denoWorkerCommand } from "@isola/isola";
 *
 * const cmd = await denoWorkerCommand("/opt/worker.ts", { cache: false });
 * console.log(cmd.args.at(-1)); // "/opt/worker.ts"
 * ```
 *
 * @param script The worker script: a URL, or an absolute path.
 * @param options Flags, config, lock, other modules, caching.
 * @returns Executable, arguments, environment, paths to read.
 * @throws {TypeError} If `script` is a relative path.
 * @throws {DenoCacheError} If a module cannot be fetched.
 */
export async function denoWorkerCommand(
  script: string | URL,
  options: DenoWorkerOptions = {},
): Promise<DenoWorkerCommand> {
  const url = scriptUrl(script);
  const setup = workerSetup(options);
  const denoDir = denoCacheDir();
  const cache = options.cache ?? true;
  if (cache) {
    const modules = [url, ...(options.modules ?? []).map(scriptUrl)];
    await cacheModules(
      modules.map((u) => u.protocol === "file:" ? fromFileUrl(u) : u.href),
      setup,
      denoDir,
    );
  }
  // The cache step wrote what the graph needs into the lock file, so the
  // worker checks against it and never writes it (--frozen).
  if (setup.lock !== null && !exists(setup.lock)) setup.lock = null;
  return {
    path: Deno.execPath(),
    args: [
      "run",
      "--no-prompt",
      ...setupFlags(setup, cache),
      ...(cache ? ["--cached-only", "--allow-import"] : []),
      ...(options.flags ?? []),
      url.protocol === "file:" ? fromFileUrl(url) : url.href,
    ],
    env: { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1" },
    readPaths: denoWorkerPaths(url, options),
  };
}
