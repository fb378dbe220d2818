import { fromFileUrl } from "@std/path";
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  CameraControls,
  CameraIpa,
  createMemfd,
  generateIpaSigningKey,
  IpaManager,
  IpaModuleError,
  loadIpaPublicKey,
  signaturePath,
  signIpaModule,
  verifyIpaModule,
} from "../../mod.ts";
import { TestIpa } from "../fixtures/ipa_test_iface.ts";
import {
  test,
  USERNS,
  warmUpWorkers,
  within,
  withoutFdLeak,
} from "../_helpers.ts";

const FIXTURE = new URL("../fixtures/ipa_test_module.ts", import.meta.url).href;
const EXAMPLES = fromFileUrl(new URL("../../examples/ipa", import.meta.url));
const EXAMPLE_KEY = new URL(
  "../../examples/keys/example_ipa.pub",
  import.meta.url,
);
const EXAMPLE_KEY_PRIVATE = new URL(
  "../../examples/keys/example_ipa.key",
  import.meta.url,
);

/** A module directory with a re-export of the test module, maybe signed. */
async function moduleDir(
  files: Record<string, string>,
  signWith?: Uint8Array,
): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_ipa_mgr" });
  for (const [name, code] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    await Deno.writeTextFile(path, code);
    if (signWith) {
      await Deno.writeFile(
        signaturePath(path),
        await signIpaModule(await Deno.readFile(path), signWith),
      );
    }
  }
  return dir;
}

const reexport = `export { createIpa, ipaModuleInfo } from "${FIXTURE}";\n`;

async function clean(fn: () => Promise<void>): Promise<void> {
  await warmUpWorkers(
    new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href,
  );
  await warmUpWorkers(
    new URL("../../src/ipa/_ipa_thread_worker.ts", import.meta.url).href,
  );
  await withoutFdLeak(fn);
}

Deno.test("IpaManager.createIpa() runs a module signed by a trusted key in a thread, any other isolated", async (t) => {
  const keys = await generateIpaSigningKey();
  const other = await generateIpaSigningKey();
  const signed = await moduleDir({ "a.ts": reexport }, keys.privateKey);
  const unsigned = await moduleDir({ "a.ts": reexport });
  try {
    await clean(async () => {
      await t.step("signed, trusted key: thread", async () => {
        const m = new IpaManager({
          modulePath: [signed],
          trustedKeys: [keys.publicKey],
        });
        await using ipa = await m.createIpa(TestIpa, "test");
        assertEquals(ipa.placement, "thread");
        assertEquals(ipa.init({ name: "t" }).greeting, "hello t");
      });
      await t.step("signed by an untrusted key: isolated", async () => {
        if (!USERNS) return; // needs a user namespace
        const m = new IpaManager({
          modulePath: [signed],
          trustedKeys: [other.publicKey],
        });
        await using ipa = await m.createIpa(TestIpa, "test");
        assertEquals(ipa.placement, "isolated");
      });
      await t.step("no signature: isolated", async () => {
        if (!USERNS) return; // needs a user namespace
        const m = new IpaManager({
          modulePath: [unsigned],
          trustedKeys: [keys.publicKey],
        });
        await using ipa = await m.createIpa(TestIpa, "test");
        assertEquals(ipa.placement, "isolated");
        assertEquals(ipa.init({ name: "i" }).greeting, "hello i");
      });
      await t.step("forced isolation: isolated", async () => {
        const m = new IpaManager({
          modulePath: [signed],
          trustedKeys: [keys.publicKey],
          forceIsolation: true,
        });
        assertEquals((await m.modules())[0].placement, "isolated");
      });
      await t.step("ISOLA_IPA_FORCE_ISOLATION=1: isolated", async () => {
        Deno.env.set("ISOLA_IPA_FORCE_ISOLATION", "1");
        try {
          const m = new IpaManager({
            modulePath: [signed],
            trustedKeys: [keys.publicKey],
          });
          assertEquals((await m.modules())[0].placement, "isolated");
        } finally {
          Deno.env.delete("ISOLA_IPA_FORCE_ISOLATION");
        }
      });
      await t.step("modified after signing: isolated", async () => {
        await Deno.writeTextFile(`${signed}/a.ts`, reexport + "// changed\n");
        const m = new IpaManager({
          modulePath: [signed],
          trustedKeys: [keys.publicKey],
        });
        assertEquals((await m.modules())[0].placement, "isolated");
      });
    });
  } finally {
    await Deno.remove(signed, { recursive: true });
    await Deno.remove(unsigned, { recursive: true });
  }
});

test.userns("IpaManager.createIpa() matches pipeline and version, and names the module it cannot use", async () => {
  const FIX = FIXTURE;
  const dir = await moduleDir({
    "a_other.ts": `import { createIpa as c } from "${FIX}";
export const ipaModuleInfo = { name: "o", pipelineName: "other", apiVersion: 1 };
export const createIpa = c;`,
    "b_test.ts": reexport,
    "c_v2.ts": `import { createIpa as c } from "${FIX}";
export const ipaModuleInfo = { name: "v2", pipelineName: "v2", apiVersion: 2 };
export const createIpa = c;`,
  });
  try {
    await clean(async () => {
      const m = new IpaManager({ modulePath: [dir, "/nonexistent/dir"] });
      await using ipa = await m.createIpa(TestIpa, "test");
      assertEquals(ipa.info.name, "test-module"); // a_other.ts was skipped
      const e = await assertRejects(
        () => m.createIpa(TestIpa, "v2"),
        IpaModuleError,
      );
      assert(e.message.includes("c_v2.ts"), e.message);
      assert(e.message.includes("version 2, not 1"), e.message);
      const none = await assertRejects(
        () => m.createIpa(TestIpa, "nothing"),
        IpaModuleError,
      );
      assert(none.message.includes("not found"), none.message);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test.userns("IpaManager with the examples: the signed open module runs in a thread and answers stats passed by fd", async () => {
  const key = await loadIpaPublicKey(EXAMPLE_KEY);
  await clean(async () => {
    const m = new IpaManager({ modulePath: [EXAMPLES], trustedKeys: [key] });
    for (
      const [pipeline, placement] of [["simple", "thread"], [
        "vendor",
        "isolated",
      ]]
    ) {
      await using ipa = await m.createIpa(CameraIpa, pipeline);
      assertEquals(ipa.placement, placement);
      ipa.init({ sensorModel: "sim" });
      ipa.configure({
        width: 640,
        height: 480,
        pixelFormat: "RGB888",
        frameDurationUs: 33_333,
      });
      ipa.start();
      const controls = Promise.withResolvers<Map<number, unknown>>();
      ipa.on("setSensorControls", (p) => controls.resolve(p.controls));
      // A dark scene: every zone at 0.02 grey.
      const zones = new Float32Array(48).fill(0.02);
      using stats = createMemfd({ data: new Uint8Array(zones.buffer) });
      ipa.processStats({ frame: 1, stats });
      const c = await within(controls.promise, 5000, "sensor controls");
      const exposure = c.get(CameraControls.ExposureTime) as number;
      assert(exposure > 10_000, `exposure ${exposure} should rise in the dark`);
      ipa.stop();
    }
  });
});

Deno.test("loadIpaPublicKey() reads the .pub files ipa-sign writes, and raw keys; anything else is a RangeError naming the file", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_keys" });
  try {
    const key = await loadIpaPublicKey(EXAMPLE_KEY);
    assertEquals(key.length, 32);
    const text = (await Deno.readTextFile(EXAMPLE_KEY)).trim();
    assertEquals(btoa(String.fromCharCode(...key)), text);
    // Without the trailing newline, and as 32 raw bytes.
    await Deno.writeTextFile(`${dir}/a.pub`, text);
    assertEquals(await loadIpaPublicKey(`${dir}/a.pub`), key);
    await Deno.writeFile(`${dir}/raw.pub`, key);
    assertEquals(await loadIpaPublicKey(`${dir}/raw.pub`), key);
    for (
      const [name, content] of [["short.pub", btoa("x".repeat(31))], [
        "junk.pub",
        "not base64 at all!",
      ], ["private.key", await Deno.readTextFile(EXAMPLE_KEY_PRIVATE)]]
    ) {
      await Deno.writeTextFile(`${dir}/${name}`, content);
      const e = await assertRejects(
        () => loadIpaPublicKey(`${dir}/${name}`),
        RangeError,
      );
      assert(e.message.includes(name), e.message);
    }
    await assertRejects(
      () => loadIpaPublicKey(`${dir}/missing.pub`),
      Deno.errors.NotFound,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("IpaManager and verifyIpaModule() refuse a malformed trusted key (RangeError) and options of the wrong type (TypeError)", async () => {
  const e = assertThrows(
    () => new IpaManager({ trustedKeys: [new Uint8Array(31)] }),
    RangeError,
  );
  assert(e.message.includes("options.trustedKeys[0] is 31 bytes"), e.message);
  await assertRejects(
    () =>
      verifyIpaModule(new Uint8Array(1), new Uint8Array(64), [
        new Uint8Array(33),
      ]),
    RangeError,
    "trustedKeys[0] is 33 bytes",
  );
  const cases: [unknown, string][] = [
    [{ modulePath: "./examples/ipa" }, "options.modulePath"],
    [{ trustedKeys: "key" }, "options.trustedKeys"],
    [{ trustedKeys: ["key"] }, "options.trustedKeys[0]"],
    [{ forceIsolation: "1" }, "options.forceIsolation"],
    [{ timeout: "2000" }, "options.timeout"],
    [{ denoFlags: ["--allow-env", 1] }, "options.denoFlags[1]"],
    [{ env: { A: 1 } }, "options.env.A"],
    [{ filesystem: { read: "/x" } }, "options.filesystem.read"],
    [{ config: true }, "options.config"],
    [{ lock: 1 }, "options.lock"],
    [{ warmUp: "many" }, "options.warmUp"],
    [{ keepWarm: "yes" }, "options.keepWarm"],
  ];
  for (const [options, names] of cases) {
    const err = assertThrows(
      // deno-lint-ignore no-explicit-any
      () => new IpaManager(options as any),
      TypeError,
    );
    assert(err.message.includes(names), err.message);
  }
  const m = new IpaManager({ modulePath: [] });
  await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => m.createIpa(CameraIpa, undefined as any),
    TypeError,
    "pipelineName",
  );
});
