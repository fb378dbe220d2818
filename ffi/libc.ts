/**
 * Loading libc. Every binding module of `ffi/` (one per C header, named
 * after it) declares its own symbol table and opens it through
 * {@linkcode lazyLibc}; the library is opened the first time a symbol is
 * used, once per JavaScript realm, so each Worker loads its own copy.
 *
 * This file and its siblings are the only places in isola that know libc
 * symbol names, constants and struct layouts.
 *
 * @module
 */

/** The glibc shared object on Linux (x86_64 and aarch64). */
export const LIBC_PATH = "libc.so.6";

/**
 * Returns a memoised loader for a libc symbol table. The first call opens
 * the library; later calls return the same symbols.
 *
 * @param symbols The symbol table, checked with
 *   `satisfies Deno.ForeignLibraryInterface` by the caller.
 * @returns A function returning the loaded symbols.
 */
export function lazyLibc<const S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): () => Deno.DynamicLibrary<S>["symbols"] {
  let lib: Deno.DynamicLibrary<S> | undefined;
  return () => {
    lib ??= Deno.dlopen(LIBC_PATH, symbols);
    return lib.symbols;
  };
}

/**
 * C type vocabulary, so that symbol definitions read like the man-page
 * prototypes (LP64: `long`, `size_t` and pointers are 64-bit).
 */
export const C = {
  /** `int` */
  int: "i32",
  /** `unsigned int` */
  uint: "u32",
  /** `long` */
  long: "i64",
  /** `size_t` */
  size_t: "usize",
  /** `ssize_t` */
  ssize_t: "isize",
  /** `off_t` */
  off_t: "i64",
  /** `pid_t` */
  pid_t: "i32",
  /** a pointer we pass as a JS byte buffer (`void *`, `struct x *`) */
  buf: "buffer",
  /** an opaque pointer value */
  ptr: "pointer",
  /** `void` */
  void: "void",
} as const;
