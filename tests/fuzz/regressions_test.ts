// Replays every input saved in tests/regressions/ by the fuzzers
// (tests/stress/fuzz.ts): each must now end in a value or the typed error,
// with no descriptor left behind.
import { fromFileUrl } from "@std/path";
import { assert } from "@std/assert";
import { replayCase, type SavedCase } from "../stress/fuzz.ts";
import { withoutFdLeak } from "../_helpers.ts";

const DIR = new URL("../regressions/", import.meta.url);

Deno.test("fuzz regressions in tests/regressions/ end in a value or a typed error", async (t) => {
  assert(Deno.statSync(DIR).isDirectory, `${fromFileUrl(DIR)} is missing`);
  const files = [...Deno.readDirSync(DIR)]
    .filter((e) => e.isFile && e.name.endsWith(".json"))
    .map((e) => e.name)
    .sort();
  for (const name of files) {
    await t.step(name, async () => {
      const c: SavedCase = JSON.parse(
        Deno.readTextFileSync(new URL(name, DIR)),
      );
      await withoutFdLeak(() => {
        const result = replayCase(c);
        assert(
          result.ok,
          `${name} (${c.description}) now: ${result.outcome}`,
        );
      });
    });
  }
});
