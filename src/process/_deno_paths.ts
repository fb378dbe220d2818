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

/** Whether `program` is the Deno executable running this code. */
export function isThisDeno(program: string): boolean {
  const self = real(Deno.execPath());
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
 * The read-only paths of a Deno child: the cache (`DENO_DIR`, else
 * `$XDG_CACHE_HOME/deno`, else `$HOME/.cache/deno`, from the child's
 * environment) and the project of every argument that is a local script.
 */
export function denoChildPaths(
  args: readonly string[],
  env: ReadonlyMap<string, string>,
): string[] {
  const out: string[] = [];
  const cache = env.get("DENO_DIR") ??
    (env.get("XDG_CACHE_HOME")
      ? `${env.get("XDG_CACHE_HOME")}/deno`
      : undefined) ??
    (env.get("HOME") ? `${env.get("HOME")}/.cache/deno` : undefined);
  if (cache !== undefined && cache.startsWith("/")) out.push(cache);
  for (const a of args) {
    let path = a;
    if (a.startsWith("file://")) {
      try {
        path = decodeURIComponent(new URL(a).pathname);
      } catch {
        continue;
      }
    }
    if (!path.startsWith("/") || !SCRIPT.test(path)) continue;
    if (fileKind(path) !== "file") continue;
    out.push(projectOf(real(path) ?? path));
  }
  return out;
}
