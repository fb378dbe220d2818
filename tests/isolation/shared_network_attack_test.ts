// Attacks on the network namespace isola's jailed children share
// (src/process/_shared_network.ts), by two children that run attacker
// code (tests/isolation/net_attacker.c): a victim opens every door another
// child could aim at (abstract stream and datagram sockets, a
// NETLINK_USERSOCK port, UDP and TCP ports), an attacker tries each of
// them, and tries to configure the namespace, open packet, raw and vsock
// sockets, and reach the namespace's owner. Every attempt must be refused
// and the victim must receive nothing; the same pair unjailed shows that
// the probes do reach each other.
import { assert, assertEquals } from "@std/assert";
import { createMemfd, Process, readFd } from "../../mod.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import { landlockAbi } from "../../ffi/landlock.ts";
import { readlink } from "../../ffi/unistd.ts";
import { compileC, USERNS, within, withoutFdLeak } from "../_helpers.ts";

const HERE = new URL(".", import.meta.url).pathname;
const dec = new TextDecoder();
const SCOPED = clone3Available() && USERNS && landlockAbi() >= 6;
const WAIT_MS = 10_000;
const POLL_MS = 10;
// Long enough for a datagram or a connection to reach a polling victim.
const SETTLE_MS = 200;

/** Rows the unjailed control must get through (the probes can succeed). */
const CONTROL_REACHES = [
  "connect to another child's abstract stream socket",
  "sendto another child's abstract datagram socket",
  "send to another child's NETLINK_USERSOCK port",
];

/** A TCP port free on the host now (for the unjailed control). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

type Isolate = false | { shareNetworkNamespace: boolean };

function spawn(
  peer: string,
  args: string[],
  iso: Isolate,
  out: ReturnType<typeof createMemfd>,
): Process {
  return Process.spawn(peer, {
    args,
    isolate: iso === false
      ? undefined
      : { filesystem: { read: [peer] }, ...iso },
    stdout: out,
  });
}

interface Round {
  rows: Map<string, { refused: boolean; detail: string }>;
  received: string[];
  /** The two children's network namespaces (jailed runs). */
  nets: [string | null, string | null];
  shared: [boolean, boolean];
}

/** A victim and an attacker, both under `iso`. */
async function round(peer: string, iso: Isolate): Promise<Round> {
  const name = `isola-net-attack-${Deno.pid}-${iso ? "jail" : "open"}`;
  const port = String(freePort());
  using vout = createMemfd();
  using aout = createMemfd();
  const victim = spawn(peer, ["victim", name, port], iso, vout);
  try {
    const deadline = Date.now() + WAIT_MS;
    while (!dec.decode(readFd(vout)).includes("ready")) {
      assert(Date.now() < deadline, `victim: ${dec.decode(readFd(vout))}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const attacker = spawn(peer, ["attack", name, port], iso, aout);
    const victimNet = netOf(victim.pid!);
    assertEquals(
      await within(attacker.exited, WAIT_MS, "attacker"),
      { kind: "exited", code: 0 },
    );
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const table = dec.decode(readFd(aout));
    assert(table.endsWith("done\n"), table);
    const rows = new Map<string, { refused: boolean; detail: string }>();
    for (const line of table.split("\n")) {
      const [what, v, detail] = line.split("\t");
      if (detail !== undefined) {
        rows.set(what, { refused: v === "REFUSED", detail });
      }
    }
    const attackerNet = table.match(/^net (\S+)$/m)?.[1] ?? null;
    const received = dec.decode(readFd(vout)).split("\n")
      .filter((l) => l.startsWith("RECEIVED"));
    return {
      rows,
      received,
      nets: [victimNet, attackerNet],
      shared: [
        victim.describe().sharedNetworkNamespace,
        attacker.describe().sharedNetworkNamespace,
      ],
    };
  } finally {
    victim.kill();
    await within(victim.exited, WAIT_MS, "victim exit");
  }
}

function netOf(pid: number): string | null {
  const t = readlink(`/proc/${pid}/ns/net`);
  return typeof t === "string" ? t : null;
}

function escaped(r: Round): string[] {
  return [...r.rows].filter(([, v]) => !v.refused).map(([k, v]) =>
    `${k}: ${v.detail}`
  );
}

Deno.test({
  name:
    "jailed children in the shared network namespace reach neither each other nor the namespace's configuration",
  ignore: !SCOPED,
  async fn() {
    const { path, dir } = await compileC(`${HERE}net_attacker.c`);
    try {
      await withoutFdLeak(async () => {
        // Control: unjailed, in the host's namespace, the probes connect.
        const open = await round(path, false);
        for (const row of CONTROL_REACHES) {
          assertEquals(open.rows.get(row)?.refused, false, row);
        }
        assert(
          open.received.length >= CONTROL_REACHES.length,
          open.received.join(),
        );

        const jail = await round(path, { shareNetworkNamespace: true });
        assertEquals(jail.shared, [true, true]);
        assert(jail.nets[0] !== null && jail.nets[0] === jail.nets[1]);
        assert(jail.nets[0] !== readlink("/proc/self/ns/net"));
        assertEquals(escaped(jail), []);
        assertEquals(jail.received, []);
        // Refused by the layer meant to refuse it, not by a missing peer:
        // Landlock's scope for abstract sockets, seccomp for netlink's
        // USERSOCK and vsock, no capability over the namespace for the
        // loopback and packet sockets, a loopback that stays down.
        const why = (row: string) => jail.rows.get(row)?.detail;
        assertEquals(
          why("connect to another child's abstract stream socket"),
          "EPERM",
        );
        assertEquals(
          why("sendto another child's abstract datagram socket"),
          "EPERM",
        );
        assertEquals(
          why("send to another child's NETLINK_USERSOCK port"),
          "EPERM",
        );
        assertEquals(why("connect over vsock (VMADDR_CID_LOCAL)"), "EPERM");
        assertEquals(
          why("bring the loopback up (rtnetlink RTM_NEWLINK)"),
          "EPERM",
        );
        assertEquals(
          why("bring the loopback up (ioctl SIOCSIFFLAGS)"),
          "EPERM",
        );
        assertEquals(why("open a packet socket (AF_PACKET)"), "EPERM");
        assertEquals(
          why("send UDP to 127.0.0.1 in the shared namespace"),
          "ENETUNREACH",
        );
        assertEquals(
          why("open the shared namespace's owner (NS_GET_USERNS)"),
          "EPERM",
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "jailed children with network namespaces of their own refuse the same attacks",
  ignore: !SCOPED,
  async fn() {
    const { path, dir } = await compileC(`${HERE}net_attacker.c`);
    try {
      await withoutFdLeak(async () => {
        const own = await round(path, { shareNetworkNamespace: false });
        assertEquals(own.shared, [false, false]);
        assert(own.nets[0] !== null && own.nets[0] !== own.nets[1]);
        // There the namespace's owner is the child's own user namespace:
        // opening it reaches nothing new.
        const owner = "open the shared namespace's owner (NS_GET_USERNS)";
        assertEquals(own.rows.get(owner)?.refused, false);
        own.rows.delete(owner);
        assertEquals(escaped(own), []);
        assertEquals(own.received, []);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** What a jailed `cat` of `/proc/net/unix` shows, under `share`. */
async function unixTable(share: boolean): Promise<string> {
  using out = createMemfd();
  const cat = Process.spawn("/bin/cat", {
    args: ["/proc/net/unix"],
    isolate: { shareNetworkNamespace: share },
    stdout: out,
  });
  assertEquals(await within(cat.exited, WAIT_MS, "cat"), {
    kind: "exited",
    code: 0,
  });
  return dec.decode(readFd(out));
}

Deno.test({
  name:
    "a jailed child reads the abstract names another binds in the shared namespace, not with its own (docs/security.md)",
  ignore: !SCOPED,
  async fn() {
    const { path, dir } = await compileC(`${HERE}net_attacker.c`);
    try {
      // A name is data: two colluding children can pass bytes this way.
      const name = `isola-names-are-data-${Deno.pid}`;
      using vout = createMemfd();
      const victim = spawn(
        path,
        ["victim", name, String(freePort())],
        { shareNetworkNamespace: true },
        vout,
      );
      try {
        const deadline = Date.now() + WAIT_MS;
        while (!dec.decode(readFd(vout)).includes("ready")) {
          assert(Date.now() < deadline, dec.decode(readFd(vout)));
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
        assert((await unixTable(true)).includes(`@${name}`));
        assert(!(await unixTable(false)).includes(`@${name}`));
      } finally {
        victim.kill();
        await within(victim.exited, WAIT_MS, "victim exit");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
