/**
 * File URL ↔ path conversions for POSIX paths, by the rules of the WHATWG
 * URL standard (percent-encoding), so that a path holding a space, `#`,
 * `?` or `%` survives the trip. `URL.pathname` is not a path (it keeps
 * `%20`), and `file://${path}` is not a URL (a `#` starts a fragment).
 * The library keeps no bare-specifier dependency (a consumer's import map
 * would resolve it), hence these instead of `@std/path`.
 *
 * @module
 */

/**
 * The path of a `file:` URL.
 *
 * @param url A `file:` URL (no host).
 * @returns The absolute path, percent-decoded.
 * @throws {TypeError} If `url` is not a local `file:` URL.
 */
export function fromFileUrl(url: string | URL): string {
  const u = url instanceof URL ? url : new URL(url);
  if (u.protocol !== "file:" || (u.host !== "" && u.host !== "localhost")) {
    throw new TypeError(`Not a local file URL: ${u.href}`);
  }
  return decodeURIComponent(u.pathname);
}

/**
 * The `file:` URL of an absolute path.
 *
 * @param path An absolute POSIX path.
 * @returns Its URL, each segment percent-encoded.
 * @throws {TypeError} If `path` is not absolute.
 */
export function toFileUrl(path: string): URL {
  if (!path.startsWith("/")) {
    throw new TypeError(`Not an absolute path: ${path}`);
  }
  return new URL(`file://${path.split("/").map(encodeURIComponent).join("/")}`);
}

/** `path` made absolute against `base`, with `.` and `..` resolved. */
function resolvePath(path: string, base: string): string {
  const out: string[] = [];
  const full = path.startsWith("/") ? path : `${base}/${path}`;
  for (const part of full.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

/**
 * The URL of `module`: a URL as it is; a path (which may hold `#`, `?`,
 * `%`: never parsed as a URL) resolved against `base`, default the working
 * directory.
 *
 * @param module A URL or a path.
 * @param base Directory a relative path is taken from.
 * @returns The URL's text.
 */
export function moduleUrl(module: string | URL, base?: string): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module)) return new URL(module).href;
  return toFileUrl(resolvePath(module, base ?? Deno.cwd())).href;
}

/**
 * The directory of a `file:` URL as a path, or null for other schemes.
 *
 * @param url A URL.
 * @returns The path of its directory, without the trailing slash.
 */
export function fileDirOf(url: string | URL): string | null {
  const u = new URL(url);
  if (u.protocol !== "file:") return null;
  return fromFileUrl(new URL(".", u)).replace(/(.)\/$/, "$1");
}
