// Jailed children share one empty network namespace where Landlock scopes
// abstract Unix sockets (src/process/_shared_network.ts): they must still
// not reach each other. A jailed child listens on an abstract socket; a
// second jailed child (same namespace, as describe() and /proc say) tries
// to connect. The same pair unjailed shows the probe does connect.
import { assert, assertEquals } from "@std/assert";
import { createMemfd, Process, readFd } from "../../mod.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import { landlockAbi } from "../../ffi/landlock.ts";
import { readlink } from "../../ffi/unistd.ts";
import { USERNS, within } from "../_helpers.ts";

const HERE = new URL(".", import.meta.url).pathname;
const GCC = "/usr/bin/gcc";
const dec = new TextDecoder();
const SCOPED = clone3Available() && USERNS && landlockAbi() >= 6;

async function compile(): Promise<{ path: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "isola-peer-" });
  const path = `${dir}/abstract_peer`;
  const r = await new Deno.Command(GCC, {
    args: ["-O1", "-o", path, `${HERE}abstract_peer.c`],
    stderr: "piped",
  }).output();
  assert(r.success, dec.decode(r.stderr));
  await Deno.chmod(dir, 0o755); // the jailed peers run as 65534 on a root host
  return { path, dir };
}

/** Starts a listener; resolves once it has bound the name. */
async function listener(
  peer: string,
  name: string,
  isolate: boolean,
) {
  const out = createMemfd();
  const p = Process.spawn(peer, {
    args: ["listen", name],
    isolate: isolate ? { filesystem: { read: [peer] } } : undefined,
    stdout: out,
  });
  const deadline = Date.now() + 10_000;
  while (!dec.decode(readFd(out)).includes("ready")) {
    assert(Date.now() < deadline, `listener: ${dec.decode(readFd(out))}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return {
    p,
    async [Symbol.asyncDispose]() {
      p.kill();
      await within(p.exited, 10_000, "listener exit");
      out.close();
    },
  };
}

async function connect(peer: string, name: string, isolate: boolean) {
  using out = createMemfd();
  const p = Process.spawn(peer, {
    args: ["connect", name],
    isolate: isolate ? { filesystem: { read: [peer] } } : undefined,
    stdout: out,
  });
  const net = readlink(`/proc/${p.pid}/ns/net`);
  const exit = await within(p.exited, 10_000, "connect");
  assertEquals(exit.kind, "exited");
  return {
    said: dec.decode(readFd(out)).trim(),
    net,
    shared: isolate && p.describe().sharedNetworkNamespace,
  };
}

Deno.test({
  name:
    "jailed children that share a network namespace cannot connect to each other's abstract sockets",
  ignore: !SCOPED,
  async fn() {
    const { path, dir } = await compile();
    try {
      const name = `isola-peer-${Deno.pid}`;
      {
        // Control: unjailed, the probe connects.
        await using _l = await listener(path, `${name}-open`, false);
        const r = await connect(path, `${name}-open`, false);
        assertEquals(r.said, "connected");
      }
      await using l = await listener(path, name, true);
      assert(l.p.describe().sharedNetworkNamespace);
      const listenerNet = readlink(`/proc/${l.p.pid}/ns/net`);
      const r = await connect(path, name, true);
      // The same namespace (so the name is reachable), refused by the
      // Landlock scope with EPERM, not by a missing name.
      assert(r.shared);
      assertEquals(r.net, listenerNet);
      assert(listenerNet !== readlink("/proc/self/ns/net"));
      assertEquals(r.said, "EPERM");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "`shareNetworkNamespace: false` gives a jailed child a network namespace of its own",
  ignore: !SCOPED,
  async fn() {
    const a = Process.spawn("/bin/sleep", { args: ["5"], isolate: true });
    const b = Process.spawn("/bin/sleep", {
      args: ["5"],
      isolate: { shareNetworkNamespace: false },
    });
    try {
      assertEquals(a.describe().sharedNetworkNamespace, true);
      assertEquals(b.describe().sharedNetworkNamespace, false);
      const na = readlink(`/proc/${a.pid}/ns/net`);
      const nb = readlink(`/proc/${b.pid}/ns/net`);
      assert(typeof na === "string" && typeof nb === "string");
      assert(na !== nb, `${na} vs ${nb}`);
      assert(na !== readlink("/proc/self/ns/net"));
    } finally {
      a.kill();
      b.kill();
      await within(Promise.all([a.exited, b.exited]), 10_000, "sleepers");
    }
  },
});
