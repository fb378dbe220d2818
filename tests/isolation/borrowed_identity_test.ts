// A root parent lends its jailed children uid 65534 for the clone3 call
// (ffi/identity.ts): for that moment the spawning thread, and the first
// stage of a two-stage spawn, must not become signalable by every other
// process of uid 65534 on the host (kill(2) lets a sender whose uid
// matches the target's real or saved uid signal it). A probe running as
// 65534 and seeing the host's pids (tests/isolation/signal_probe.c, a
// jailed child without a PID namespace) asks with signal 0, in a tight
// loop, whether it may signal the spawning thread while jailed spawns run.
import { assert, assertEquals } from "@std/assert";
import { createMemfd, Process, readFd } from "../../mod.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import { threadIds } from "../../ffi/identity.ts";
import { gettid } from "../../ffi/spawn.ts";
import { compileC, USERNS, within } from "../_helpers.ts";

const HERE = new URL(".", import.meta.url).pathname;
const dec = new TextDecoder();
const PROBE_MS = 1500;
const WAIT_MS = 20_000;
const ROOT = threadIds().uid[1] === 0;

Deno.test({
  name:
    "a root parent spawning jailed children is never signalable by uid 65534",
  ignore: !(clone3Available() && USERNS && ROOT),
  async fn() {
    const { path, dir } = await compileC(`${HERE}signal_probe.c`);
    try {
      using out = createMemfd();
      // Its own user namespace, uid 65534 on this root host, the host's
      // pids: what any process of uid 65534 sees.
      const probe = Process.spawn(path, {
        // The thread that spawns (deno test may run this module on a
        // thread other than the process's first).
        args: [String(Deno.pid), String(gettid()), String(PROBE_MS)],
        isolate: { pidNamespace: false, filesystem: { read: [path] } },
        stdout: out,
      });
      while (!dec.decode(readFd(out)).includes("ready")) {
        await new Promise((r) => setTimeout(r, 5));
      }
      let spawns = 0;
      let done = false;
      const ended = probe.exited.then((e) => {
        done = true;
        return e;
      });
      while (!done) {
        const p = Process.spawn("/bin/true", { isolate: true });
        await within(p.exited, WAIT_MS, "jailed child");
        spawns++;
      }
      assertEquals(await within(ended, WAIT_MS, "probe"), {
        kind: "exited",
        code: 0,
      });
      const [tries, allowed] = dec.decode(readFd(out)).split("\n")[1]
        .split(" ").map(Number);
      assert(spawns > 0 && tries > 0, `${spawns} spawns, ${tries} tries`);
      assertEquals(allowed, 0, `signalable in ${allowed} of ${tries} tries`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
