// Jailed children share one empty network namespace where Landlock scopes
// abstract Unix sockets (src/process/_shared_network.ts): they must still
// not reach each other. A jailed child listens on an abstract socket; a
// second jailed child (same namespace, as describe() and /proc say) tries
// to connect. The same pair unjailed shows the probe does connect.
import { assert, assertEquals } from "@std/assert";
import { createMemfd, Process, readFd } from "../../mod.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import { landlockAbi } from "../../ffi/landlock.ts";
import { close, readlink } from "../../ffi/unistd.ts";
import { O, open, sysCall } from "../../ffi/spawn.ts";
import { threadIds } from "../../ffi/identity.ts";
import { OVERFLOW_ID } from "../../ffi/mount.ts";
import {
  forgetSharedNetwork,
  sharedNetwork,
} from "../../src/process/_shared_network.ts";
import { compileC, USERNS, within } from "../_helpers.ts";

const HERE = new URL(".", import.meta.url).pathname;
const dec = new TextDecoder();
const SYS_DUP3 = 292;
const SCOPED = clone3Available() && USERNS && landlockAbi() >= 6;

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
  const exit = await within(p.exited, 10_000, "connect");
  assertEquals(exit.kind, "exited");
  const [said, net] = dec.decode(readFd(out)).trim().split(" ");
  return {
    said,
    net,
    shared: isolate && p.describe().sharedNetworkNamespace,
  };
}

Deno.test({
  name:
    "jailed children that share a network namespace cannot connect to each other's abstract sockets",
  ignore: !SCOPED,
  async fn() {
    const { path, dir } = await compileC(`${HERE}abstract_peer.c`);
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

Deno.test({
  name:
    "a jailed spawn whose shared network namespace cannot be joined gets its own, and later ones too",
  ignore: !SCOPED,
  async fn() {
    const root = threadIds().uid[1] === 0;
    const id = root ? OVERFLOW_ID : threadIds().uid[1];
    const gid = root ? OVERFLOW_ID : threadIds().gid[1];
    const held = sharedNetwork(id, gid, root);
    if (held === null) throw new Error("no shared network namespace");
    const netFd = held.net;
    // Put /dev/null where the network namespace was: setns(2) then fails
    // with EINVAL in the first stage of the next spawn.
    const nul = open("/dev/null", O.O_RDONLY | O.O_CLOEXEC);
    assert(nul >= 0);
    assertEquals(sysCall(SYS_DUP3, nul, netFd, O.O_CLOEXEC), netFd);
    close(nul);
    try {
      for (let i = 0; i < 2; i++) {
        const p = Process.spawn("/bin/true", { isolate: true });
        assertEquals(p.describe().sharedNetworkNamespace, false);
        assertEquals(await within(p.exited, 10_000, "true"), {
          kind: "exited",
          code: 0,
        });
      }
      assertEquals(sharedNetwork(id, gid, root), null);
    } finally {
      forgetSharedNetwork(id);
    }
    const p = Process.spawn("/bin/true", { isolate: true });
    assertEquals(p.describe().sharedNetworkNamespace, true);
    await within(p.exited, 10_000, "true");
    // The first stage of each two-stage spawn was reaped: no zombie child.
    assertEquals(zombieChildren(), []);
  },
});

const SYS_WAITID = 247;
const P_ALL = 0;
const WAIT_ANY_ZOMBIE = 4 | 1 | 0x01000000 | 0x40000000; // WEXITED|WNOHANG|WNOWAIT|__WALL
const SI_PID = 16; // offsetof(siginfo_t, si_pid) on x86_64

/** Pids of this process's children that are zombies (waitid WNOWAIT: not reaped). */
function zombieChildren(): number[] {
  const info = new Uint8Array(128);
  const r = sysCall(
    SYS_WAITID,
    P_ALL,
    0,
    Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(info))),
    WAIT_ANY_ZOMBIE,
    0,
  );
  if (r < 0) return []; // ECHILD: no child at all
  const pid = new DataView(info.buffer).getInt32(SI_PID, true);
  return pid === 0 ? [] : [pid];
}
