/**
 * What a `deno run` child needs to read to start inside the jail: its
 * module cache, and the project of each script it is given (the nearest
 * directory above the script with a `deno.json`, `deno.jsonc` or
 * `package.json`, which is also where Deno looks for its configuration;
 * else the script's own directory). Used when the program is this Deno
 * executable, so that a pipe worker started as
 * `deno run worker.ts` works in the default jail.
 *
 * @module
 */
import { fileKind } from "../../ffi/mount.ts";
import { O, open } from "../../ffi/spawn.ts";
import { close, readlink } from "../../ffi/unistd.ts";
import { fromFileUrl } from "../common/_file_url.ts";

const O_PATH = 0o10000000;
const PROJECT_FILES = ["deno.json", "deno.jsonc", "package.json"];
const SCRIPT = /\.(ts|tsx|mts|js|jsx|mjs)$/;

function real(path: string): string | null {
  const fd = open(path, O_PATH | O.O_CLOEXEC);
  if (fd < 0) return null;
  const r = readlink(`/proc/self/fd/${fd}`);
  close(fd);
  return typeof r === "string" ? r : null;
}

let self: string | null | undefined;

/** Whether `program` is the Deno executable running this code. */
export function isThisDeno(program: string): boolean {
  self ??= real(Deno.execPath()); // the running executable does not move
  return self !== null && real(program) === self;
}

function projectOf(script: string): string {
  let dir = script.slice(0, script.lastIndexOf("/")) || "/";
  const start = dir;
  for (;;) {
    for (const f of PROJECT_FILES) {
      if (fileKind(`${dir === "/" ? "" : dir}/${f}`) === "file") return dir;
    }
    if (dir === "/") return start;
    dir = dir.slice(0, dir.lastIndexOf("/")) || "/";
  }
}

/**
 * The Deno cache an environment names: `DENO_DIR`, else
 * `$XDG_CACHE_HOME/deno`, else `$HOME/.cache/deno` (an empty value counts
 * as unset); undefined if none is set. Possibly relative.
 */
export function denoCacheDirIn(
  env: ReadonlyMap<string, string>,
): string | undefined {
  return env.get("DENO_DIR") ||
    (env.get("XDG_CACHE_HOME") ? `${env.get("XDG_CACHE_HOME")}/deno` : "") ||
    (env.get("HOME") ? `${env.get("HOME")}/.cache/deno` : "") ||
    undefined;
}

/** How {@linkcode denoChildPaths} shows a script. */
export type ScriptScope =
  /** An argument that is an existing local script: its project (a `deno run` command line). */
  | "project"
  /** Every local module named: its own directory (the worker's config is explicit). */
  | "directory";

/**
 * The read-only paths of a Deno child: its cache (from the child's
 * environment, when absolute) and, for each local script among `args`
 * (paths or `file:` URLs; relative ones against `cwd`, the child's
 * working directory), its project or its directory (`scope`). The
 * one list behind the jail's view of a `deno` child and
 * `denoWorkerPaths()`.
 */
export function denoChildPaths(
  args: readonly (string | URL)[],
  env: ReadonlyMap<string, string>,
  scope: ScriptScope = "project",
  cwd: string | null = null,
): string[] {
  const out: string[] = [];
  const cache = denoCacheDirIn(env);
  if (cache !== undefined && cache.startsWith("/")) out.push(cache);
  for (const a of args) {
    let path: string;
    try {
      path = a instanceof URL || a.startsWith("file:") ? fromFileUrl(a) : a;
    } catch {
      continue; // another scheme: nothing local to show
    }
    if (!path.startsWith("/")) {
      // Relative to the child's working directory, where known.
      if (cwd === null || scope === "directory") continue;
      path = `${cwd === "/" ? "" : cwd}/${path}`;
    }
    if (scope === "directory") {
      out.push(path.slice(0, path.lastIndexOf("/")) || "/");
      continue;
    }
    if (!SCRIPT.test(path) || fileKind(path) !== "file") continue;
    out.push(projectOf(real(path) ?? path));
  }
  return out;
}
