// isola as a dependency, the way a new user gets it: the files `deno
// publish` would upload, served over HTTP from a directory whose name holds
// a space and `#`, imported by a project in another such directory with
// its own deno.json and an empty Deno cache. Its isolated children run in
// network namespaces, so everything they load must come from the cache.
import { assertEquals } from "@std/assert";
import { fromFileUrl } from "@std/path";
import { createMemfd, Process, readFd } from "../../mod.ts";
import { test, within } from "../_helpers.ts";
import { consumerFiles } from "./_app.ts";

const ROOT = fromFileUrl(new URL("../../", import.meta.url));
/** A fresh cache fetches isola and runs four kinds of children. */
const CONSUMER_TIMEOUT_MS = 180_000;
const CONTENT_TYPES: Record<string, string> = {
  ts: "application/typescript",
  json: "application/json",
};

/** Copies `from` (a file or a directory tree) to `to`. */
async function copy(from: string, to: string): Promise<void> {
  const info = await Deno.stat(from);
  if (info.isFile) {
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(from, to);
    return;
  }
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    await copy(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** The publishable files (deno.json `publish.include`) copied to `dir`. */
async function publishable(dir: string): Promise<void> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  for (const entry of config.publish.include as string[]) {
    await copy(`${ROOT}${entry.replace(/\/$/, "")}`, `${dir}/${entry}`);
  }
}

/** Serves `dir` on 127.0.0.1 as a static file server. */
function serve(dir: string): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      if (path.split("/").includes("..")) {
        return new Response("bad path", { status: 400 });
      }
      try {
        const body = await Deno.readFile(`${dir}${path}`);
        const ext = path.slice(path.lastIndexOf(".") + 1);
        return new Response(body, {
          headers: { "content-type": CONTENT_TYPES[ext] ?? "text/plain" },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
}

test.userns("consumer: isola served over HTTP, imported by a project with its own import map and an empty cache; pipe, thread and isolated IPA, isolated Process all work", async () => {
  const top = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola consumer" });
  const pkg = `${top}/served pkg #1`;
  const app = `${top}/my app #2`;
  const server = serve(pkg);
  try {
    await publishable(pkg);
    const isola = `http://127.0.0.1:${server.addr.port}/mod.ts`;
    for (const [path, text] of Object.entries(consumerFiles(isola))) {
      const file = `${app}/${path}`;
      await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), {
        recursive: true,
      });
      await Deno.writeTextFile(file, text);
    }
    using stdout = createMemfd();
    await using consumer = Process.spawn(Deno.execPath(), {
      args: [
        "run",
        "--allow-ffi",
        "--allow-read",
        `--allow-import=127.0.0.1:${server.addr.port}`,
        `${app}/main.ts`,
      ],
      cwd: "/", // the project is found from its module, not the cwd
      clearEnv: true,
      env: {
        DENO_DIR: `${top}/empty deno dir`,
        HOME: top,
        PATH: "/usr/local/bin:/usr/bin:/bin",
        NO_COLOR: "1",
        DENO_NO_UPDATE_CHECK: "1",
      },
      stdout,
      stderr: "capture",
    });
    const exit = await within(
      consumer.exited,
      CONSUMER_TIMEOUT_MS,
      "the consumer project",
    );
    const err = new TextDecoder().decode(exit.stderr);
    assertEquals(
      exit.kind === "exited" ? exit.code : exit.signal,
      0,
      `the consumer failed: ${err}`,
    );
    const lines = new TextDecoder().decode(readFd(stdout)).trim().split("\n");
    assertEquals(JSON.parse(lines.at(-1)!), {
      pipe: { sendSync: "HELLO!", call: "HELLO!", networkNamespace: true },
      thread: { placement: "thread", text: "HELLO!" },
      isolated: { placement: "isolated", text: "HELLO!" },
      process: { exit: 7, userNamespace: true },
    }, err);
  } finally {
    await server.shutdown();
    await Deno.remove(top, { recursive: true });
  }
});
