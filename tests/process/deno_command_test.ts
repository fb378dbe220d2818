import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { fromFileUrl, toFileUrl } from "@std/path";
import {
  createMemfd,
  denoCacheDir,
  DenoCacheError,
  denoWorkerCommand,
  denoWorkerPaths,
  IpcPipeUnixSocket,
  Process,
  readFd,
} from "../../mod.ts";
import { test, warmUpWorkers, within, withoutFdLeak } from "../_helpers.ts";

const MOD_TS = new URL("../../mod.ts", import.meta.url);
const ROOT = fromFileUrl(new URL("../../", import.meta.url)).replace(/\/$/, "");
const RECEIVER =
  new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href;
/** What a dynamically linked Deno reads besides its modules. */
const SYSTEM_READ = [
  "/lib",
  "/lib64",
  "/usr/lib",
  "/usr/lib64",
  "/etc/ld.so.cache",
  "/proc",
  "/dev/urandom",
  "/dev/null",
];
const CALL_TIMEOUT_MS = 10_000;

/**
 * A project whose path holds a space and `#`: deno.json mapping `mylib` to
 * a file outside the app's directory and `@isola/isola` to this checkout,
 * and a pipe worker that uses both.
 */
async function makeProject(): Promise<{ dir: string; app: string }> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola dc #" });
  const app = `${dir}/my app#1`;
  await Deno.mkdir(app);
  await Deno.mkdir(`${dir}/lib`);
  await Deno.writeTextFile(
    `${app}/deno.json`,
    JSON.stringify({
      imports: {
        "@isola/isola": MOD_TS.href,
        "mylib": "../lib/mylib.ts",
      },
      lock: false,
    }),
  );
  await Deno.writeTextFile(
    `${dir}/lib/mylib.ts`,
    "export const shout = (s: string): string => s.toUpperCase() + '!';\n",
  );
  await Deno.writeTextFile(
    `${app}/worker.ts`,
    `import { IpcPipeWorker, readFd } from "@isola/isola";
import { shout } from "mylib";
IpcPipeWorker.fromArgs().serveBlocking({
  onCall: (msg) => ({
    cmd: msg.cmd,
    data: new TextEncoder().encode(shout(new TextDecoder().decode(readFd(msg.fds[0])))),
  }),
});
`,
  );
  return { dir, app };
}

Deno.test("denoWorkerCommand() refuses a relative script path with a TypeError naming new URL()", async () => {
  await assertRejects(
    () => denoWorkerCommand("./worker.ts", { cache: false }),
    TypeError,
    'new URL("./worker.ts", import.meta.url)',
  );
  assertThrows(() => denoWorkerPaths("worker.ts"), TypeError, "relative");
});

Deno.test("denoWorkerPaths() lists the executable, cache, config, lock file, import-map targets and script directory", async () => {
  const { dir, app } = await makeProject();
  try {
    await Deno.writeTextFile(`${app}/my.lock`, "{}");
    await Deno.writeTextFile(
      `${app}/deno.json`,
      JSON.stringify({
        // Comments and a trailing comma, as deno.jsonc allows.
        imports: { "mylib": "../lib/mylib.ts", "pkg/": "./pkg/" },
        scopes: { "./x/": { "other": `${toFileUrl(`${dir}/other`).href}/` } },
        lock: "my.lock",
      }).replace("{", "{ // the app's config\n").replace(/}$/, ",}"),
    );
    const paths = denoWorkerPaths(toFileUrl(`${app}/worker.ts`), {
      config: `${app}/deno.json`,
    });
    assertEquals(
      new Set(paths),
      new Set([
        Deno.execPath(),
        denoCacheDir(),
        `${app}/deno.json`,
        `${app}/my.lock`,
        `${dir}/lib`,
        `${app}/pkg`,
        `${dir}/other`,
        app,
      ]),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("denoWorkerCommand() passes the config, --no-lock for a config without one, and --cached-only", async () => {
  const { dir, app } = await makeProject();
  try {
    const script = toFileUrl(`${app}/worker.ts`);
    const cmd = await denoWorkerCommand(script, {
      config: `${app}/deno.json`,
      flags: ["--allow-ffi"],
    });
    assertEquals(cmd.path, Deno.execPath());
    assertEquals(cmd.args, [
      "run",
      "--no-prompt",
      `--config=${app}/deno.json`,
      "--no-lock",
      "--cached-only",
      "--allow-import",
      "--allow-ffi",
      `${app}/worker.ts`,
    ]);
    assertEquals(cmd.env.DENO_DIR, denoCacheDir());
    assert(cmd.readPaths.includes(ROOT), "the import map's target: isola");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("denoWorkerCommand() throws DenoCacheError for a module that cannot be loaded", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola dc #" });
  try {
    const e = await assertRejects(
      () =>
        denoWorkerCommand(toFileUrl(`${dir}/missing.ts`), { config: false }),
      DenoCacheError,
    );
    assert(e.message.includes("missing.ts"), e.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test.userns("denoWorkerCommand() starts a pipe worker from a path with a space and #, offline, that resolves its config's import map, reading only its paths", async () => {
  await warmUpWorkers(RECEIVER);
  const { dir, app } = await makeProject();
  try {
    await withoutFdLeak(async () => {
      const cmd = await denoWorkerCommand(
        new URL("./worker.ts", toFileUrl(`${app}/`)),
        { config: `${app}/deno.json`, flags: ["--allow-ffi"] },
      );
      await using pipe = new IpcPipeUnixSocket(cmd.path, {
        args: cmd.args,
        env: cmd.env,
        clearEnv: true,
        isolate: {
          networkNamespace: true,
          filesystem: { read: [...cmd.readPaths, ...SYSTEM_READ] },
        },
        timeout: CALL_TIMEOUT_MS,
      });
      using text = createMemfd({ data: new TextEncoder().encode("hello") });
      using reply = pipe.sendSync({ cmd: 1, fds: [text] });
      assertEquals(new TextDecoder().decode(reply.data), "HELLO!");
      using again = await pipe.call({ cmd: 2, fds: [text] });
      assertEquals(new TextDecoder().decode(again.data), "HELLO!");
      assertEquals(readFd(text), new TextEncoder().encode("hello"));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("denoWorkerCommand() defaults to this process's config and lock file", async () => {
  const cmd = await denoWorkerCommand("/opt/worker.ts", { cache: false });
  assertEquals(cmd.args.slice(0, 4), [
    "run",
    "--no-prompt",
    `--config=${ROOT}/deno.json`,
    `--lock=${ROOT}/deno.lock`,
  ]);
});

Deno.test("denoWorkerCommand() follows --config, --no-lock and --import-map of the command line that started this process", async () => {
  const { dir, app } = await makeProject();
  try {
    await Deno.writeTextFile(`${app}/map.json`, '{ "imports": {} }');
    await Deno.writeTextFile(
      `${dir}/print.ts`,
      `import { denoWorkerCommand } from "${MOD_TS.href}";
const cmd = await denoWorkerCommand("/opt/w.ts", { cache: false });
console.log(JSON.stringify(cmd.args));
`,
    );
    using out = createMemfd();
    await using p = Process.spawn(Deno.execPath(), {
      args: [
        "run",
        "--allow-ffi",
        "--allow-read",
        "-c",
        `${app}/deno.json`,
        "--no-lock",
        `--import-map=${app}/map.json`,
        `${dir}/print.ts`,
        "--config=not-for-deno", // the script's own argument
      ],
      cwd: "/",
      stdout: out,
      stderr: "capture",
    });
    const exit = await within(p.exited, CALL_TIMEOUT_MS, "print.ts");
    assertEquals(exit.kind, "exited", new TextDecoder().decode(exit.stderr));
    assertEquals(JSON.parse(new TextDecoder().decode(readFd(out))), [
      "run",
      "--no-prompt",
      `--config=${app}/deno.json`,
      "--no-lock",
      `--import-map=${app}/map.json`,
      "/opt/w.ts",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
