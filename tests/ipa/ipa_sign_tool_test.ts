// The ipa-sign tool end to end: the files it writes are what
// loadIpaPublicKey, verifyIpaModule and IpaManager read.
import { assert, assertEquals } from "@std/assert";
import {
  IpaManager,
  loadIpaPublicKey,
  Process,
  signaturePath,
  verifyIpaModule,
} from "../../mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const TOOL = `${ROOT}tools/ipa_sign.ts`;
const FIXTURE = new URL("../fixtures/ipa_test_module.ts", import.meta.url).href;

/** Runs the tool (through Process: no --allow-run needed); its exit code. */
async function ipaSign(...args: string[]): Promise<number> {
  await using tool = Process.spawn(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${ROOT}deno.json`,
      "--allow-read",
      "--allow-write",
      TOOL,
      ...args,
    ],
    isolate: false,
  });
  const exit = await tool.exited;
  assertEquals(exit.kind, "exited");
  return exit.kind === "exited" ? exit.code : -1;
}

Deno.test("ipa-sign keygen/sign/verify: its .pub loads with loadIpaPublicKey and trusts what it signed", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_sign" });
  try {
    const module = `${dir}/mod.ts`;
    await Deno.writeTextFile(
      module,
      `export { createIpa, ipaModuleInfo } from "${FIXTURE}";\n`,
    );
    assertEquals(await ipaSign("keygen", "--out", `${dir}/k`), 0);
    assertEquals(await ipaSign("sign", module, "--key", `${dir}/k.key`), 0);
    assertEquals(await ipaSign("verify", module, "--pub", `${dir}/k.pub`), 0);
    const key = await loadIpaPublicKey(`${dir}/k.pub`);
    const code = await Deno.readFile(module);
    const sig = await Deno.readFile(signaturePath(module));
    assert(await verifyIpaModule(code, sig, [key]));
    const manager = new IpaManager({ modulePath: [dir], trustedKeys: [key] });
    assertEquals((await manager.modules())[0].placement, "thread");
    // A changed module no longer verifies.
    await Deno.writeTextFile(module, "// changed\n", { append: true });
    assertEquals(await ipaSign("verify", module, "--pub", `${dir}/k.pub`), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
