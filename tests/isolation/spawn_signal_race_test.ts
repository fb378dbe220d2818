// Races two-stage jailed spawns (src/process/_shared_network.ts) against
// signals sent to the spawning process's group: the first stage of each
// spawn is in that group and, until it calls setsid(), so is the child.
// A host program that handles SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2
// (tests/isolation/_spawn_under_signals.ts) spawns in a loop while this
// test sends those, SIGSTOP/SIGCONT pairs and SIGCHLD/SIGWINCH to its
// group. Every spawn must end as a child that exited or was killed by one
// of those signals (never a hang or an unexplained error), the host must
// survive, no child may be left a zombie, and a first stage killed by
// such a signal must not make the host give up the shared namespace.
import { assert, assertEquals } from "@std/assert";
import { createMemfd, Process, readFd } from "../../mod.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import { landlockAbi } from "../../ffi/landlock.ts";
import { sysCall } from "../../ffi/spawn.ts";
import { USERNS, within } from "../_helpers.ts";

const SPAWNER = new URL("./_spawn_under_signals.ts", import.meta.url).pathname;
const dec = new TextDecoder();
const SYS_KILL = 62;
const SPAWNS = 150;
const READY_MS = 30_000;
const RUN_MS = 120_000;
// A few signals per millisecond of the spawner's loop.
const PAUSE_MS = 1;
const SIGNALS: Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGHUP",
  "SIGUSR1",
  "SIGUSR2",
  "SIGCHLD",
  "SIGWINCH",
];
const NUMBER: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGWINCH: 28,
};
/** Deaths a child may die of: the default action of a signal we send. */
const FATAL = new Set(["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2"]);

Deno.test({
  name:
    "two-stage jailed spawns raced by signals to the process group end cleanly: no hang, no crash, no zombie",
  ignore: !(clone3Available() && USERNS && landlockAbi() >= 6),
  async fn() {
    using out = createMemfd();
    await using host = Process.spawn(Deno.execPath(), {
      args: ["run", "--allow-ffi", "--allow-read", SPAWNER, String(SPAWNS)],
      stdout: out,
      stderr: "capture",
    });
    const deadline = Date.now() + READY_MS;
    while (!dec.decode(readFd(out)).includes("ready")) {
      assert(Date.now() < deadline, "spawner not ready");
      await new Promise((r) => setTimeout(r, 10));
    }
    const group = -host.pid!;
    let sent = 0;
    let running = true;
    const storm = (async () => {
      for (let i = 0; running; i++) {
        const sig = SIGNALS[i % SIGNALS.length];
        if (sysCall(SYS_KILL, group, NUMBER[sig]) === 0) sent++;
        if (i % 16 === 0) {
          // A stopped first stage holds the host in clone3 (vfork): it
          // must go on once continued.
          sysCall(SYS_KILL, group, NUMBER.SIGSTOP);
          sysCall(SYS_KILL, group, NUMBER.SIGCONT);
        }
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
    })();
    let exit;
    try {
      exit = await within(host.exited, RUN_MS, "spawner");
    } finally {
      running = false;
      await storm;
    }
    assertEquals(exit, { kind: "exited", code: 0, stderr: exit.stderr });
    const lines = dec.decode(readFd(out)).trim().split("\n");
    const summary = JSON.parse(lines[lines.length - 1]) as {
      outcomes: Record<string, number>;
      handled: number;
      shared: number;
      zombie: number;
    };
    assert(sent > 0 && summary.handled > 0, "no signal reached the host");
    let total = 0;
    for (const [how, n] of Object.entries(summary.outcomes)) {
      total += n;
      const ok = how === "exited 0" ||
        (how.startsWith("signaled ") && FATAL.has(how.slice(9)));
      assert(ok, `unexpected outcome: ${how} (${n})`);
    }
    assertEquals(total, SPAWNS);
    assertEquals(summary.zombie, 0);
    // A first stage killed before it blocked signals is started again:
    // the host keeps sharing the namespace.
    assertEquals(
      summary.shared,
      SPAWNS,
      JSON.stringify(summary) + dec.decode(exit.stderr),
    );
  },
});
