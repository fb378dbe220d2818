// The layout is the architecture: src/ has one folder per layer, and a
// module may import only from its own layer or the layers below it. The
// child-side entry points must not pull in the parent side (spawning,
// the receiver Worker, the parent end of a pipe): a worker program loads
// only what it runs. See docs/architecture.md.
import { assertEquals } from "@std/assert";
import { fromFileUrl, toFileUrl } from "@std/path";

/** Layers from bottom to top; `ffi` is below them all. */
const LAYERS = ["ffi", "common", "fd", "process", "ipc", "pipe", "ipa"];

/** Modules that run in a child or a worker thread, and what they must not load. */
const CHILD_SIDE = [
  "src/pipe/ipc_pipe_worker.ts",
  "src/ipa/ipa_proxy_worker.ts",
  "src/ipa/_ipa_thread_worker.ts",
];
const PARENT_SIDE = [
  "src/process/process.ts",
  "src/pipe/ipc_pipe_unix_socket.ts",
  "src/pipe/_receiver.ts",
  "src/ipa/ipa_proxy.ts",
  "ffi/clone3_trampoline.ts",
];

const ROOT = new URL("../", import.meta.url);

function rel(url: URL): string {
  return fromFileUrl(url).slice(fromFileUrl(ROOT).length);
}

function layerOf(path: string): number {
  const parts = path.split("/");
  const name = parts[0] === "src" ? parts[1] : parts[0];
  return LAYERS.indexOf(name);
}

/** Relative imports of a module: static, dynamic and `new URL(…)` workers. */
function importsOf(path: string): string[] {
  return importsOfText(path, Deno.readTextFileSync(new URL(path, ROOT)));
}

function importsOfText(path: string, text: string): string[] {
  const code = text.split("\n").filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l))
    .join("\n");
  const found = new Set<string>();
  const re = /(?:from\s+|import\s*\(\s*|new URL\(\s*)"(\.{1,2}\/[^"]+\.ts)"/g;
  for (const m of code.matchAll(re)) {
    found.add(rel(new URL(m[1], toFileUrl(fromFileUrl(new URL(path, ROOT))))));
  }
  return [...found];
}

function modules(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(new URL(dir, ROOT))) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...modules(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

Deno.test("layout: src/ has one folder per layer and no loose modules", () => {
  const loose = [...Deno.readDirSync(new URL("src", ROOT))]
    .filter((e) => !e.isDirectory).map((e) => e.name);
  assertEquals(loose, []);
  for (const e of Deno.readDirSync(new URL("src", ROOT))) {
    assertEquals(LAYERS.includes(e.name), true, `unknown layer src/${e.name}`);
  }
});

Deno.test("layout: every import points to the same layer or below", () => {
  const upward: string[] = [];
  for (const m of [...modules("ffi"), ...modules("src")]) {
    for (const dep of importsOf(m)) {
      if (!dep.startsWith("src/") && !dep.startsWith("ffi/")) {
        upward.push(`${m} -> ${dep} (outside the library)`);
      } else if (layerOf(dep) > layerOf(m)) upward.push(`${m} -> ${dep}`);
    }
  }
  assertEquals(upward, []);
});

Deno.test("layout: child-side modules do not load the parent side", () => {
  const bad: string[] = [];
  for (const entry of CHILD_SIDE) {
    const seen = new Set<string>();
    const todo = [entry];
    while (todo.length) {
      const m = todo.pop()!;
      if (seen.has(m)) continue;
      seen.add(m);
      todo.push(...importsOf(m));
    }
    for (const p of PARENT_SIDE) if (seen.has(p)) bad.push(`${entry} -> ${p}`);
  }
  assertEquals(bad, []);
});

Deno.test("layout: the checker sees an upward import (self-test)", () => {
  const deps = importsOfText(
    "src/fd/x.ts",
    'import { IpaManager } from "../ipa/ipa_manager.ts";\n' +
      ' * import { Process } from "../process/process.ts";\n' +
      'const w = new URL("../pipe/_receiver_worker.ts", import.meta.url);\n',
  );
  assertEquals(deps, [
    "src/ipa/ipa_manager.ts",
    "src/pipe/_receiver_worker.ts",
  ]);
  assertEquals(layerOf("src/fd/x.ts") < layerOf(deps[0]), true);
});
