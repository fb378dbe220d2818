// The promises of docs/security.md, each backed by a test on real kernel
// objects: an isolated child cannot reach the parent's loopback listener,
// cannot see a descriptor it was not given, holds no privilege (no_new_privs,
// no capability, unmapped uid), and cannot signal the parent.
import { fromFileUrl } from "@std/path";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertNotMatch,
} from "@std/assert";
import {
  createMemfd,
  IpaProxyIsolated,
  IpcPipeUnixSocket,
  Process,
  type ProcessExit,
  readFd,
} from "../../mod.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import { pipe2 } from "../../ffi/spawn.ts";
import { close, memfdCreate, readlink } from "../../ffi/unistd.ts";
import { threadIds } from "../../ffi/identity.ts";
import { TestIpa } from "../fixtures/ipa_test_iface.ts";
import { USERNS, warmUpWorkers, within, withoutFdLeak } from "../_helpers.ts";

const dec = new TextDecoder();
const NET_WORKER = fromFileUrl(
  new URL("../fixtures/fault_net_worker.ts", import.meta.url),
);
const CAN_ISOLATE = clone3Available() && USERNS;
const RECEIVER =
  new URL("../../src/pipe/_receiver_worker.ts", import.meta.url).href;

/** Runs /bin/sh -c `script`, isolated; resolves to its stdout and report. */
async function shIsolated(
  script: string,
  keepFds: number[] = [],
): Promise<{ out: string; exit: ProcessExit }> {
  using out = createMemfd();
  const p = Process.spawn("/bin/sh", {
    args: ["-c", script],
    isolate: true,
    stdout: out,
    stderr: "capture",
    keepFds,
  });
  const exit = await within(p.exited, 10_000, "isolated /bin/sh");
  return { out: dec.decode(readFd(out)), exit };
}

/**
 * Descriptors the parent holds on purpose without close-on-exec (so only
 * the spawn's own closing keeps them from a child): a pipe and a memfd.
 * Returns their numbers and /proc link targets.
 */
function strayFds(): { fds: number[]; targets: string[] } {
  const p = pipe2(0);
  if (typeof p === "number") throw new Error(`pipe2: ${p}`);
  const m = memfdCreate("isola-stray", 0);
  if (m < 0) throw new Error(`memfd_create: ${m}`);
  const fds = [...p, m];
  return {
    fds,
    targets: fds.map((fd) => readlink(`/proc/self/fd/${fd}`) as string),
  };
}

Deno.test({
  name:
    "`IpcPipeUnixSocket` isolated worker cannot connect to the parent's 127.0.0.1 listener; an unisolated one can",
  ignore: !CAN_ISOLATE,
  fn: async () => {
    await warmUpWorkers(RECEIVER);
    await withoutFdLeak(async () => {
      using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = new Uint8Array(
        new Uint32Array([listener.addr.port]).buffer,
      );
      const results: string[] = [];
      for (const isolate of [false, true]) {
        await using pipe = new IpcPipeUnixSocket(Deno.execPath(), {
          args: [
            "run",
            "--allow-ffi",
            "--allow-read",
            "--allow-net=127.0.0.1",
            NET_WORKER,
          ],
          isolate,
          timeout: 20_000,
        });
        using r = await pipe.call({ cmd: 1, data: port });
        results.push(dec.decode(r.data));
        if (!isolate) {
          // Take the control connection off the backlog.
          (await within(listener.accept(), 5000, "accept")).close();
        }
      }
      assertEquals(results[0], "connected");
      assertMatch(results[1], /unreachable|refused/i);
    });
  },
});

Deno.test({
  name:
    "`Process` isolated child sees only its standard streams and the kept descriptor, not the parent's strays",
  ignore: !CAN_ISOLATE,
  fn: async () => {
    await withoutFdLeak(async () => {
      const stray = strayFds();
      using kept = createMemfd({ name: "isola-kept" });
      try {
        // ls's own descriptor for the directory it lists shows up too.
        const { out, exit } = await shIsolated(
          "exec /bin/ls -l /proc/self/fd",
          [kept.fd],
        );
        assertEquals(exit.kind, "exited", dec.decode(exit.stderr));
        const seen = new Map<number, string>();
        for (const m of out.matchAll(/ (\d+) -> (.*)$/gm)) {
          // ls's directory (/proc/self where the jail binds only that).
          if (/^\/proc\/(\d+|self)\/fd$/.test(m[2])) continue;
          seen.set(Number(m[1]), m[2]);
        }
        assertEquals(
          [...seen.keys()].sort((a, b) => a - b),
          [0, 1, 2, kept.fd],
        );
        assertMatch(seen.get(kept.fd)!, /memfd:isola-kept/);
        for (const t of stray.targets) {
          assert(![...seen.values()].includes(t), `${t} leaked`);
        }
      } finally {
        stray.fds.forEach((fd) => close(fd));
      }
    });
  },
});

Deno.test({
  name:
    "`IpcPipeUnixSocket` isolated worker holds none of the parent's stray descriptors",
  ignore: !CAN_ISOLATE,
  fn: async () => {
    await warmUpWorkers(RECEIVER);
    await withoutFdLeak(async () => {
      const stray = strayFds();
      try {
        await using pipe = new IpcPipeUnixSocket(Deno.execPath(), {
          args: ["run", "--allow-ffi", "--allow-read", NET_WORKER],
          isolate: true,
          timeout: 20_000,
        });
        using _r = await pipe.call({ cmd: 1, data: new Uint8Array(4) });
        const pid = pipe.process.pid!;
        const targets: string[] = [];
        for (let fd = 0; fd < 1024; fd++) {
          const t = readlink(`/proc/${pid}/fd/${fd}`);
          if (typeof t === "string") targets.push(t);
        }
        assert(targets.length > 3, `only ${targets}`);
        for (const t of stray.targets) {
          assert(!targets.includes(t), `${t} leaked into the worker`);
        }
      } finally {
        stray.fds.forEach((fd) => close(fd));
      }
    });
  },
});

Deno.test({
  name:
    "`Process` isolated child has no_new_privs, no capability, only its own id mapped (65534 on a root host), and no privilege over another user's file",
  ignore: !CAN_ISOLATE,
  fn: async () => {
    await withoutFdLeak(async () => {
      // A mode-0600 file of another uid: readable to a root parent through
      // CAP_DAC_OVERRIDE, a capability the child must not have here.
      const other = await Deno.makeTempFile({ dir: "/tmp" });
      try {
        await Deno.writeTextFile(other, "not yours\n");
        await Deno.chmod(other, 0o600);
        let parentReads = false;
        try {
          await Deno.chown(other, 12345, 12345); // needs a root parent
          parentReads = (await Deno.readTextFile(other)) === "not yours\n";
        } catch {
          // Not root: the file stays ours, and the child may read it (see
          // docs/security.md, "The user's files").
        }
        const { out, exit } = await shIsolated(
          `cat /proc/self/status; echo "map:$(cat /proc/self/uid_map)";` +
            `cat ${other} && echo READ-OK || echo READ-REFUSED`,
        );
        assertEquals(exit.kind, "exited", dec.decode(exit.stderr));
        assertMatch(out, /^NoNewPrivs:\s+1$/m);
        // A root parent's child runs as nobody; any other keeps its uid.
        // Either way it maps only itself, and every uid field agrees.
        const euid = threadIds().uid[1];
        const id = euid === 0 ? 65534 : euid;
        assertMatch(
          out,
          new RegExp(`^Uid:\\s+${id}\\s+${id}\\s+${id}\\s+${id}$`, "m"),
        );
        assertMatch(
          out,
          new RegExp(`^Gid:\\s+(\\d+)\\s+\\1\\s+\\1\\s+\\1$`, "m"),
        );
        assertMatch(out, new RegExp(`^map:\\s+${id}\\s+${id}\\s+1$`, "m"));
        if (euid === 0) assertMatch(out, /^Groups:\s*$/m);
        // After execve as a non-root uid of its namespace it holds no
        // capability at all, in its own namespace or any other.
        for (const set of ["CapInh", "CapPrm", "CapEff", "CapAmb"]) {
          assertMatch(out, new RegExp(`^${set}:\\s+0+$`, "m"));
        }
        if (parentReads) {
          assertMatch(out, /READ-REFUSED/);
          assertNotMatch(out, /not yours/);
        }
      } finally {
        await Deno.remove(other);
      }
    });
  },
});

Deno.test({
  name:
    "`Process` isolated child cannot signal the parent or the parent's other children",
  ignore: !CAN_ISOLATE,
  fn: async () => {
    await withoutFdLeak(async () => {
      await using victim = Process.spawn("/bin/sleep", { args: ["30"] });
      const { out, exit } = await shIsolated(
        `kill -0 ${Deno.pid}; echo "probe=$?";` +
          `kill -TERM ${Deno.pid}; echo "parent=$?";` +
          `kill -KILL ${victim.pid}; echo "sibling=$?"`,
      );
      assertEquals(exit.kind, "exited");
      for (const what of ["probe", "parent", "sibling"]) {
        const m = out.match(new RegExp(`^${what}=(\\d+)$`, "m"));
        assert(m !== null, out);
        assertNotEquals(m![1], "0", `${what}: kill succeeded`);
      }
      // ESRCH (outside its PID namespace) or EPERM, never success.
      const err = dec.decode(exit.stderr);
      const lines = err.split("\n").filter((l) => l.trim() !== "");
      assertEquals(lines.length, 3, err);
      for (const line of lines) {
        assertMatch(line, /No such process|Operation not permitted/);
      }
      await new Promise((r) => setTimeout(r, 50));
      assert(victim.running, "the sibling was killed");
      assertEquals(victim.exitStatus, null);
    });
  },
});

Deno.test({
  name:
    "`Process` with Landlock alone (no minimal root, caller's identity) reads only beneath the read paths and writes only beneath the write paths",
  ignore: !CAN_ISOLATE,
  async fn() {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_ll" });
    try {
      await Deno.mkdir(`${dir}/out`);
      await Deno.writeTextFile(`${dir}/secret`, "do not read");
      await withoutFdLeak(async () => {
        using out = createMemfd();
        await using p = Process.spawn("/bin/sh", {
          args: [
            "-c",
            `cat ${dir}/secret || echo no-read;` +
            ` echo ok > ${dir}/out/f && echo wrote;` +
            ` echo x > ${dir}/g || echo no-write;` +
            ` head -c 4 /usr/share/common-licenses/GPL-3 >/dev/null && echo usr`,
          ],
          stdout: out,
          isolate: {
            // Only Landlock between the child and the files: no minimal
            // root, and a root parent's child keeps uid 0 (so no DAC
            // check refuses anything first).
            mountNamespace: false,
            identity: false,
            filesystem: {
              read: ["/bin", "/usr", "/lib", "/lib64"],
              write: [`${dir}/out`, "/dev/null"],
            },
          },
        });
        assertEquals(p.describe().isolation.landlock, true);
        const s = await within(p.exited, 10_000, "child exit");
        assertEquals(s.kind, "exited");
        assertEquals(
          new TextDecoder().decode(readFd(out)).trim().split("\n"),
          ["no-read", "wrote", "no-write", "usr"],
        );
      });
      assertEquals(await Deno.readTextFile(`${dir}/out/f`), "ok\n");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "`IpaProxyIsolated` with `filesystem: false` (no Landlock) still loads a module from its own directory and sees nothing else of the host",
  ignore: !CAN_ISOLATE,
  async fn() {
    await warmUpWorkers(RECEIVER);
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_nofs" });
    const host = await Deno.makeTempDir({ dir: "/tmp", prefix: "isola_host" });
    try {
      const fixture =
        new URL("../fixtures/ipa_test_module.ts", import.meta.url).href;
      const module = `${dir}/reexport.ts`;
      await Deno.writeTextFile(
        module,
        `export { createIpa, ipaModuleInfo } from "${fixture}";\n`,
      );
      await Deno.writeTextFile(`${host}/secret.txt`, "host secret");
      await withoutFdLeak(async () => {
        await using ipa = await IpaProxyIsolated.create(TestIpa, module, {
          filesystem: false,
        });
        assertEquals(ipa.init({ name: "jail" }).greeting, "hello jail");
        const r = ipa.readPath({ path: `${host}/secret.txt` });
        assertEquals(r.text, undefined);
        assertMatch(r.error ?? "", /No such file/);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(host, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "jailed spawns one after another each show their own `read` paths (no view reused from the last spawn)",
  ignore: !CAN_ISOLATE,
  async fn() {
    const dirs = await Promise.all(
      ["a", "b"].map((n) => Deno.makeTempDir({ prefix: `isola-view-${n}-` })),
    );
    try {
      for (const [i, d] of dirs.entries()) {
        await Deno.chmod(d, 0o755); // 65534 on a root host
        await Deno.writeTextFile(`${d}/m`, `mark ${i}\n`);
      }
      const script = dirs.map((d) => `cat ${d}/m 2>/dev/null`).join("; ");
      for (const pick of [0, 1, 0, 1]) {
        using out = createMemfd();
        const p = Process.spawn("/bin/sh", {
          args: ["-c", script],
          isolate: { filesystem: { read: [dirs[pick]] } },
          stdout: out,
        });
        await within(p.exited, 10_000, "sh");
        assertEquals(dec.decode(readFd(out)), `mark ${pick}\n`);
      }
    } finally {
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
});
