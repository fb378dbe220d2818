// Spawn + reap /bin/true: isola's Process (clone3 trampoline, posix_spawn
// fallback, isolated) against Deno.Command. Deno.Command needs
// --allow-run=/bin/true; without it that case is skipped.
//
//   deno bench --allow-ffi --allow-read --allow-run=/bin/true bench/process_bench.ts
import { Process } from "../mod.ts";

const canRun =
  (await Deno.permissions.query({ name: "run", command: "/bin/true" }))
    .state === "granted";

Deno.bench({
  name: "Deno.Command /bin/true",
  group: "spawn+reap",
  baseline: true,
  ignore: !canRun,
  async fn() {
    await new Deno.Command("/bin/true", {
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
  },
});

Deno.bench({
  name: "Process /bin/true (clone3)",
  group: "spawn+reap",
  async fn() {
    await Process.spawn("/bin/true").exited;
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
  name: "Process /bin/true isolated (user+net ns)",
  group: "spawn+reap",
  async fn() {
    await Process.spawn("/bin/true", { isolate: true }).exited;
  },
});
