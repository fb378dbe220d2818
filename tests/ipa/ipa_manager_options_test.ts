// IpaManagerOptions reach isolated workers: the application's config (its
// import map), environment, Deno flags and extra read paths.
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  defineIpaInterface,
  IpaManager,
  IpaModuleError,
  IpcRemoteError,
  T,
} from "../../mod.ts";
import { test, warmUpWorkers, withoutFdLeak } from "../_helpers.ts";

const Greeter = defineIpaInterface({
  name: "greeter",
  version: 1,
  methods: {
    hello: {
      sync: true,
      params: T.struct({ name: T.string }),
      result: T.struct({ text: T.string }),
    },
  },
  events: {},
  lifecycle: "always-running",
});

/** The module: a bare import from the app's map, an env var, a file. */
const MODULE = `import { greet } from "greetlib";

export const ipaModuleInfo = {
  name: "greeter",
  pipelineName: "greet",
  apiVersion: 1,
};

export function createIpa() {
  return {
    hello: ({ name }: { name: string }) => ({
      text: [
        greet(name),
        Deno.env.get("ISOLA_TEST_GREETING"),
        Deno.readTextFileSync(Deno.env.get("ISOLA_TEST_EXTRA")!),
      ].join(" | "),
    }),
  };
}
`;

/** An app in a directory with a space and `#`: config, lib, module, extra. */
async function makeApp(): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola mgr #" });
  await Deno.mkdir(`${dir}/ipa modules`);
  await Deno.mkdir(`${dir}/lib`);
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({ imports: { greetlib: "./lib/greet.ts" }, lock: false }),
  );
  await Deno.writeTextFile(
    `${dir}/lib/greet.ts`,
    "export const greet = (n: string): string => `hello ${n}`;\n",
  );
  await Deno.writeTextFile(`${dir}/ipa modules/greeter.ts`, MODULE);
  await Deno.writeTextFile(`${dir}/extra.txt`, "extra file");
  return dir;
}

async function clean(fn: () => Promise<void>): Promise<void> {
  await warmUpWorkers(
    new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href,
  );
  await withoutFdLeak(fn);
}

test.userns("IpaManager passes config, env, denoFlags and filesystem to isolated workers", async () => {
  const dir = await makeApp();
  try {
    await clean(async () => {
      const options = {
        modulePath: [`${dir}/ipa modules`],
        forceIsolation: true,
        denoFlags: ["--allow-env=ISOLA_TEST_GREETING,ISOLA_TEST_EXTRA"],
        env: {
          ISOLA_TEST_GREETING: "from env",
          ISOLA_TEST_EXTRA: `${dir}/extra.txt`,
        },
      };
      const manager = new IpaManager({
        ...options,
        config: `${dir}/deno.json`,
        filesystem: { read: [`${dir}/extra.txt`] },
      });
      await using ipa = await manager.createIpa(Greeter, "greet");
      assertEquals(ipa.placement, "isolated");
      assertEquals(
        ipa.hello({ name: "isola" }).text,
        [
          "hello isola",
          "from env",
          "extra file",
        ].join(" | "),
      );

      // Without the app's config the bare specifier does not resolve.
      await assertRejects(
        () =>
          new IpaManager({
            ...options,
            config: false,
            filesystem: { read: [`${dir}/extra.txt`] },
          }).createIpa(Greeter, "greet"),
        IpaModuleError,
        "greetlib",
      );
      // Without the extra read path the file is out of the worker's reach.
      const jailed = new IpaManager({
        ...options,
        config: `${dir}/deno.json`,
      });
      await using ipa2 = await jailed.createIpa(Greeter, "greet");
      const e = assertThrows(() => ipa2.hello({ name: "x" }), IpcRemoteError);
      // Outside the jail's view the file does not exist (or Landlock denies).
      assert(/Permission denied|No such file/.test(e.message), e.message);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
