// The jail against an attacker: a C program (tests/escape/attacker.c,
// compiled here with gcc) makes every escape attempt of docs/security.md,
// under `isolate: true`, and again from inside a real isolated IPA worker
// (a malicious module that runs it). Every attempt must be refused. Where
// bubblewrap is installed the same program runs under its strict profile
// beside them; that column is printed for comparison, not asserted.
import { assert, assertEquals } from "@std/assert";
import {
  createMemfd,
  IpaProxyIsolated,
  Process,
  ProcessIsolationError,
  readFd,
} from "../../mod.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import { sysCall } from "../../ffi/spawn.ts";
import { fileKind } from "../../ffi/mount.ts";
import { close } from "../../ffi/unistd.ts";
import { EscapeIpa } from "./escape_iface.ts";
import { USERNS, warmUpWorkers, within, withoutFdLeak } from "../_helpers.ts";
import { BWRAP, bwrapStrictArgs } from "../_bwrap.ts";

const HERE = new URL(".", import.meta.url).pathname;
const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const GCC = "/usr/bin/gcc";
const dec = new TextDecoder();

// System calls for the host-side bait (x86_64, the trampoline's arch).
const SYS_SHMGET = 29;
const SYS_SHMCTL = 31;
const SYS_ADD_KEY = 248;
const SYS_KEYCTL = 250;
const IPC_PRIVATE = 0;
const IPC_CREAT = 0o1000;
const IPC_RMID = 0;
const KEY_SPEC_SESSION_KEYRING = -3;
const KEYCTL_INVALIDATE = 21;
const SHM_BYTES = 4096;
const SYS_SOCKET = 41;
const SYS_BIND = 49;
const SYS_LISTEN = 50;
const AF_UNIX = 1;
const SOCK_STREAM_CLOEXEC = 1 | 0o2000000;
const SUN_PATH = 2; // offsetof(struct sockaddr_un, sun_path)
const SOCKADDR_UN_SIZE = 110;

function addr(b: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
}

/**
 * A listening Unix socket bound to `path`, or with `abstract` to that
 * abstract name (Deno's needs --allow-net).
 */
function listenUnix(path: string, abstract = false): number {
  const fd = sysCall(SYS_SOCKET, AF_UNIX, SOCK_STREAM_CLOEXEC, 0);
  assert(fd >= 0, "socket");
  const sa = new Uint8Array(SOCKADDR_UN_SIZE);
  sa[0] = AF_UNIX;
  const name = new TextEncoder().encode(path);
  // An abstract name follows a NUL and is exactly its length.
  sa.set(name, SUN_PATH + (abstract ? 1 : 0));
  const len = abstract ? SUN_PATH + 1 + name.length : sa.length;
  assert(sysCall(SYS_BIND, fd, addr(sa), len) === 0, "bind");
  assert(sysCall(SYS_LISTEN, fd, 1) === 0, "listen");
  return fd;
}

type Verdict = { escaped: boolean; detail: string };
type Column = Map<string, Verdict>;

function parse(table: string): Column {
  const out: Column = new Map();
  for (const line of table.split("\n")) {
    const [what, v, detail] = line.split("\t");
    if (detail === undefined) continue;
    out.set(what, { escaped: v === "ESCAPED", detail });
  }
  return out;
}

async function compile(dir: string): Promise<string> {
  const out = `${dir}/attacker`;
  const r = await new Deno.Command(GCC, {
    args: ["-O1", "-o", out, `${HERE}attacker.c`],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert(r.success, dec.decode(r.stderr));
  return out;
}

/** Host objects the attacker aims at; `cleanup` removes them. */
async function bait(dir: string) {
  const secret = `${dir}/secret.txt`;
  await Deno.writeTextFile(secret, "host secret\n");
  const victim = `${dir}/victim`;
  await Deno.writeTextFile(victim, "victim\n");
  await Deno.chmod(victim, 0o644);
  const sock = `${dir}/host.sock`;
  const unix = listenUnix(sock);
  await Deno.chmod(sock, 0o600);
  const abstractName = `isola-escape-${Deno.pid}`;
  const abstract = listenUnix(abstractName, true);
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const shm = sysCall(SYS_SHMGET, IPC_PRIVATE, SHM_BYTES, IPC_CREAT | 0o666);
  assert(shm >= 0, "shmget");
  const keyName = `isola-escape-${Deno.pid}`;
  const enc = new TextEncoder();
  const type = enc.encode("user\0");
  const desc = enc.encode(keyName + "\0");
  const data = enc.encode("s3cret");
  const key = sysCall(
    SYS_ADD_KEY,
    addr(type),
    addr(desc),
    addr(data),
    data.length,
    KEY_SPEC_SESSION_KEYRING,
  );
  const marker = `/tmp/isola-escape-marker-${Deno.pid}`;
  const args = [
    String(Deno.pid),
    REPO,
    secret,
    victim,
    sock,
    String((tcp.addr as Deno.NetAddr).port),
    String(shm),
    keyName,
    marker,
    abstractName,
  ];
  return {
    args,
    victim,
    marker,
    keyAdded: key >= 0,
    cleanup() {
      close(unix);
      close(abstract);
      tcp.close();
      sysCall(SYS_SHMCTL, shm, IPC_RMID, 0);
      if (key >= 0) sysCall(SYS_KEYCTL, KEYCTL_INVALIDATE, key);
    },
  };
}

async function underIsola(program: string, args: string[]): Promise<string> {
  using out = createMemfd();
  await using p = Process.spawn(program, {
    args,
    isolate: true,
    stdout: out,
    stderr: "capture",
  });
  const exit = await within(p.exited, 20_000, "attacker under isola");
  assertEquals(exit.kind, "exited", dec.decode(exit.stderr));
  return dec.decode(readFd(out));
}

const MODULE = (mod: string) => `
import { createMemfd, Process, ProcessIsolationError, readFd } from "${mod}";
export const ipaModuleInfo = { name: "escape", pipelineName: "escape", apiVersion: 1 };
export function createIpa() {
  return {
    init() {}, start() {}, stop() {},
    // Inside the jail clone3 fails with ENOSYS: Process falls back to
    // posix_spawn, which cannot isolate, so a nested jail is refused.
    async attack({ program, args }: { program: string; args: string[] }) {
      try {
        using out = createMemfd();
        const p = Process.spawn(program, { args, stdout: out });
        await p.exited;
        let nested = "start a nested isolated child\\t";
        try {
          await Process.spawn("/bin/true", { isolate: true }).exited;
          nested += "ESCAPED\\tstarted";
        } catch (e) {
          nested += e instanceof ProcessIsolationError &&
              e.message.includes("ENOSYS")
            ? "REFUSED\\tProcessIsolationError (clone3 ENOSYS)"
            : "ESCAPED\\t" + String(e);
        }
        return { table: new TextDecoder().decode(readFd(out)) + nested + "\\n" };
      } catch (e) {
        return { table: "", error: String(e) };
      }
    },
  };
}
`;

async function underIpa(dir: string, program: string, args: string[]) {
  const module = `${dir}/escape_module.ts`;
  await Deno.writeTextFile(
    module,
    MODULE(`${REPO}/mod.ts`),
  );
  await using ipa = await IpaProxyIsolated.create(EscapeIpa, module, {
    timeout: 20_000,
  });
  const r = ipa.attack({ program, args });
  assertEquals(r.error, undefined);
  return r.table;
}

async function underBwrap(program: string, args: string[]) {
  using out = createMemfd();
  await using p = Process.spawn(BWRAP, {
    args: [
      ...bwrapStrictArgs(),
      "--ro-bind",
      program,
      program,
      program,
      ...args,
    ],
    stdout: out,
    stderr: "capture",
  });
  const exit = await within(p.exited, 20_000, "attacker under bwrap");
  if (exit.kind !== "exited" || exit.code !== 0) {
    return `bwrap failed: ${dec.decode(exit.stderr)}`;
  }
  return dec.decode(readFd(out));
}

function printTable(columns: [string, Column][]): void {
  const rows = [...new Set(columns.flatMap(([, c]) => [...c.keys()]))];
  const w = Math.max(...rows.map((r) => r.length));
  const cell = (v: Verdict | undefined) =>
    (v === undefined ? "-" : `${v.escaped ? "ESCAPED" : "refused"} ${v.detail}`)
      .padEnd(26);
  console.log(
    `\n${"attempt".padEnd(w)}  ${columns.map(([n]) => n.padEnd(26)).join("")}`,
  );
  for (const r of rows) {
    console.log(
      `${r.padEnd(w)}  ${columns.map(([, c]) => cell(c.get(r))).join("")}`,
    );
  }
}

Deno.test({
  name:
    "Escape attempts: every one is refused under `isolate: true` and inside an isolated IPA worker (bwrap strict beside, informational)",
  ignore: !clone3Available() || !USERNS || fileKind(GCC) === -2,
  async fn() {
    try {
      await Process.spawn("/bin/true", { isolate: true }).exited;
    } catch (e) {
      if (!(e instanceof ProcessIsolationError)) throw e;
      console.log(`skipped: user namespaces refused here (${e.message})`);
      return;
    }
    // The receiver Worker's own descriptors stay for the process's life.
    await warmUpWorkers(
      new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href,
    );
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola-escape" });
    const hostDir = await Deno.makeTempDir({
      dir: "/tmp",
      prefix: "isola-host",
    });
    // The jailed child runs as nobody on a root host: it must be able to
    // run the attacker and load the module (the bait stays private).
    await Deno.chmod(dir, 0o755);
    const b = await bait(hostDir);
    try {
      await withoutFdLeak(async () => {
        const program = await compile(dir);
        const columns: [string, Column][] = [
          ["isolate: true", parse(await underIsola(program, b.args))],
          ["isolated IPA", parse(await underIpa(dir, program, b.args))],
        ];
        if (fileKind(BWRAP) === "file") {
          columns.push([
            "bwrap strict",
            parse(await underBwrap(program, b.args)),
          ]);
        }
        printTable(columns);
        const rows = [...columns[0][1].keys()];
        assert(rows.length >= 40, `only ${rows.length} attempts ran`);
        for (const [name, col] of columns.slice(0, 2)) {
          for (const r of rows) assert(col.has(r), `${name}: ${r} missing`);
          const escaped = [...col].filter(([, v]) => v.escaped).map(([k]) => k);
          assertEquals(escaped, [], `${name}: escapes`);
        }
      });
      // Nothing reached the host: no file in its /tmp, the victim intact.
      assertEquals(fileKind(b.marker), -2);
      assertEquals((await Deno.stat(b.victim)).mode! & 0o7777, 0o644);
    } finally {
      b.cleanup();
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(hostDir, { recursive: true });
    }
  },
});
