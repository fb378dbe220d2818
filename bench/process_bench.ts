// Spawn + reap /bin/true: isola's Process unisolated (clone3 trampoline,
// posix_spawn fallback), with the full jail, with namespaces only, against
// Deno.Command and bubblewrap's strict profile, all in one run. Then the
// start of an isolated IPA worker with the full jail against the layers it
// had before (namespaces + Landlock). Deno.Command and bwrap need
// --allow-run; without it those cases are skipped.
//
//   deno bench --allow-ffi --allow-read --allow-env --allow-run bench/process_bench.ts
import { CameraIpa, IpaProxyIsolated, Process } from "../mod.ts";
import { BWRAP, bwrapStrictArgs } from "../tests/_bwrap.ts";
import { NAMESPACES_ONLY } from "./_isolation_cases.ts";

const canRun = async (command: string) =>
  (await Deno.permissions.query({ name: "run", command })).state ===
    "granted";
const hasBwrap = await canRun(BWRAP) &&
  (await Deno.lstat(BWRAP).then(() => true, () => false));

Deno.bench({
  name: "Process /bin/true (clone3)",
  group: "spawn+reap",
  baseline: true,
  async fn() {
    await Process.spawn("/bin/true").exited;
  },
});

Deno.bench({
  name: "Deno.Command /bin/true",
  group: "spawn+reap",
  ignore: !(await canRun("/bin/true")),
  async fn() {
    await new Deno.Command("/bin/true", {
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
  },
});

Deno.bench({
  name: "Process /bin/true (posix_spawn)",
  group: "spawn+reap",
  async fn() {
    await Process.spawn("/bin/true", { spawnPath: "posix_spawn" }).exited;
  },
});

Deno.bench({
  name: "Process /bin/true isolated, namespaces only",
  group: "spawn+reap",
  async fn() {
    await Process.spawn("/bin/true", { isolate: NAMESPACES_ONLY }).exited;
  },
});

Deno.bench({
  name: "Process /bin/true isolate: true (full jail)",
  group: "spawn+reap",
  async fn() {
    await Process.spawn("/bin/true", { isolate: true }).exited;
  },
});

Deno.bench({
  name: "bwrap strict /bin/true",
  group: "spawn+reap",
  ignore: !hasBwrap,
  async fn() {
    await Process.spawn(BWRAP, {
      args: [...bwrapStrictArgs(), "/bin/true"],
    }).exited;
  },
});

const IPA_MODULE = new URL("../examples/ipa/vendor_ae_awb.ts", import.meta.url)
  .pathname;

Deno.bench({
  name: "IpaProxyIsolated start+close, namespaces + Landlock",
  group: "ipa-start",
  baseline: true,
  n: 20,
  async fn() {
    const ipa = await IpaProxyIsolated.create(CameraIpa, IPA_MODULE, {
      isolate: { ...NAMESPACES_ONLY, landlock: true },
      timeout: 20_000,
    });
    await ipa.close();
  },
});

Deno.bench({
  name: "IpaProxyIsolated start+close, full jail",
  group: "ipa-start",
  n: 20,
  async fn() {
    const ipa = await IpaProxyIsolated.create(CameraIpa, IPA_MODULE, {
      timeout: 20_000,
    });
    await ipa.close();
  },
});
