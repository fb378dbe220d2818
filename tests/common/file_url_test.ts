import { assertEquals, assertThrows } from "@std/assert";
import * as std from "@std/path";
import {
  fileDirOf,
  fromFileUrl,
  moduleUrl,
  toFileUrl,
} from "../../src/common/_file_url.ts";

const ODD_PATHS = [
  "/tmp/my projects/a.ts",
  "/tmp/a#b/c#.ts",
  "/tmp/q?x=1/100%/é ü.ts",
];

Deno.test("toFileUrl()/fromFileUrl() round-trip paths with a space, #, ? and %, interchangeably with @std/path", () => {
  for (const path of ODD_PATHS) {
    const url = toFileUrl(path);
    assertEquals(url.hash, "");
    assertEquals(url.search, "");
    assertEquals(fromFileUrl(url), path);
    assertEquals(fromFileUrl(url.href), path);
    // Interchangeable with @std/path's conversions.
    assertEquals(std.fromFileUrl(url), path);
    assertEquals(fromFileUrl(std.toFileUrl(path)), path);
  }
});

Deno.test("moduleUrl() never parses a path as a URL; resolves . and .. against the base", () => {
  assertEquals(
    moduleUrl("/tmp/a#b/m.ts"),
    "file:///tmp/a%23b/m.ts",
  );
  assertEquals(
    moduleUrl("./x/../m #1.ts", "/srv/app dir"),
    "file:///srv/app%20dir/m%20%231.ts",
  );
  assertEquals(moduleUrl(new URL("http://h/m.ts")), "http://h/m.ts");
  assertEquals(moduleUrl("jsr:@isola/isola"), "jsr:@isola/isola");
});

Deno.test("fileDirOf() is the directory path of a file URL, null for other schemes", () => {
  assertEquals(fileDirOf(toFileUrl("/tmp/a b#c/m.ts")), "/tmp/a b#c");
  assertEquals(fileDirOf(toFileUrl("/m.ts")), "/");
  assertEquals(fileDirOf("http://127.0.0.1:1/src/m.ts"), null);
});

Deno.test("fromFileUrl() and toFileUrl() refuse what is not a local file URL or an absolute path", () => {
  assertThrows(() => fromFileUrl("http://h/x"), TypeError, "Not a local file");
  assertThrows(() => fromFileUrl("file://host/x"), TypeError, "Not a local");
  assertThrows(() => toFileUrl("relative/x"), TypeError, "Not an absolute");
});
