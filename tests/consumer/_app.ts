// The files of a consumer project: an application with its own deno.json
// and import map that imports isola by URL. `@isola/isola` and `mylib` are
// resolved by the project's import map, not this repository's.

/** The project's files, by path relative to its directory. */
export function consumerFiles(isolaUrl: string): Record<string, string> {
  return {
    "deno.json": JSON.stringify(
      { imports: { "@isola/isola": isolaUrl, "mylib": "./lib/mylib.ts" } },
      null,
      2,
    ),
    "lib/mylib.ts": `export function shout(s: string): string {
  return s.toUpperCase() + "!";
}
`,
    "iface.ts": `import { defineIpaInterface, T } from "@isola/isola";

export const Shout = defineIpaInterface({
  name: "shout",
  version: 1,
  methods: {
    shout: {
      sync: true,
      params: T.struct({ fd: T.fd }),
      result: T.struct({ text: T.string }),
    },
  },
  events: {},
  lifecycle: "always-running",
});
`,
    "ipa/shout_ipa.ts":
      `import { type IpaImplementation, type IpaModuleInfo, readFd } from "@isola/isola";
import { shout } from "mylib";
import type { Shout } from "../iface.ts";

export const ipaModuleInfo: IpaModuleInfo = {
  name: "shout",
  pipelineName: "consumer",
  apiVersion: 1,
};

export function createIpa(): IpaImplementation<typeof Shout> {
  return {
    shout: ({ fd }) => {
      const text = shout(new TextDecoder().decode(readFd(fd)));
      if (typeof fd !== "number") fd.close();
      return { text };
    },
  };
}
`,
    "worker.ts": `import { IpcPipeWorker, readFd } from "@isola/isola";
import { shout } from "mylib";

IpcPipeWorker.fromArgs().serveBlocking({
  onCall: (msg) => ({
    cmd: msg.cmd,
    data: new TextEncoder().encode(
      shout(new TextDecoder().decode(readFd(msg.fds[0]))),
    ),
  }),
});
`,
    "main.ts": `import {
  createMemfd,
  denoWorkerCommand,
  IpaProxyIsolated,
  IpaProxyThread,
  IpcPipeUnixSocket,
  Process,
} from "@isola/isola";
import { Shout } from "./iface.ts";

const TIMEOUT_MS = 20_000;
const dec = new TextDecoder();
const out: Record<string, unknown> = {};
using text = createMemfd({ data: new TextEncoder().encode("hello") });

// Its own pipe worker, named relative to this module, isolated.
const cmd = await denoWorkerCommand(new URL("./worker.ts", import.meta.url), {
  flags: ["--allow-ffi"],
});
{
  await using pipe = new IpcPipeUnixSocket(cmd.path, {
    args: cmd.args,
    env: cmd.env,
    isolate: true,
    timeout: TIMEOUT_MS,
  });
  using a = pipe.sendSync({ cmd: 1, fds: [text] });
  using b = await pipe.call({ cmd: 2, fds: [text] });
  out.pipe = {
    sendSync: dec.decode(a.data),
    call: dec.decode(b.data),
    networkNamespace: pipe.process.describe().isolation.networkNamespace,
  };
}

// Its own IPA interface, trusted (thread) and untrusted (isolated).
const module = new URL("./ipa/shout_ipa.ts", import.meta.url);
{
  await using ipa = await IpaProxyThread.create(Shout, module, {
    timeout: TIMEOUT_MS,
  });
  out.thread = { placement: ipa.placement, ...ipa.shout({ fd: text }) };
}
{
  await using ipa = await IpaProxyIsolated.create(Shout, module, {
    timeout: TIMEOUT_MS,
  });
  out.isolated = { placement: ipa.placement, ...ipa.shout({ fd: text }) };
}

// An isolated Process.
{
  await using p = Process.spawn("/bin/sh", {
    args: ["-c", "exit 7"],
    isolate: true,
  });
  const exit = await p.exited;
  out.process = {
    exit: exit.kind === "exited" ? exit.code : exit.kind,
    userNamespace: p.describe().isolation.userNamespace,
  };
}
console.log(JSON.stringify(out));
`,
  };
}
