// The spawner of tests/isolation/spawn_signal_race_test.ts: leads a
// process group of its own, handles the signals the test sends to that
// group, and starts jailed children (two-stage spawns into the shared
// network namespace) one after another. Prints "ready" once it leads its
// group, then one JSON line: how each spawn ended, how many signals it
// handled, whether it still shares the namespace, and its zombie children.
//
// Usage: deno run --allow-ffi --allow-read _spawn_under_signals.ts COUNT
import { Process, ProcessSpawnError } from "../../mod.ts";
import { sysCall } from "../../ffi/spawn.ts";

const SYS_SETPGID = 109;
const SYS_WAITID = 247;
const P_ALL = 0;
// WEXITED | WNOHANG | WNOWAIT | __WALL: look at a zombie, reap nothing.
const WAIT_ANY_ZOMBIE = 4 | 1 | 0x01000000 | 0x40000000;
const SI_PID = 16; // offsetof(siginfo_t, si_pid) on x86_64
const EXIT_WAIT_MS = 10_000;
const HANDLED: Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGHUP",
  "SIGUSR1",
  "SIGUSR2",
];

const count = Number(Deno.args[0]);
if (sysCall(SYS_SETPGID, 0, 0) !== 0) throw new Error("setpgid failed");
let handled = 0;
for (const s of HANDLED) Deno.addSignalListener(s, () => handled++);
console.log("ready");

const outcomes: Record<string, number> = {};
const note = (k: string) => outcomes[k] = (outcomes[k] ?? 0) + 1;
let shared = 0;
for (let i = 0; i < count; i++) {
  try {
    const p = Process.spawn("/bin/true", { isolate: true });
    if (p.describe().sharedNetworkNamespace) shared++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exit = await Promise.race([
      p.exited,
      new Promise<null>((r) => timer = setTimeout(() => r(null), EXIT_WAIT_MS)),
    ]);
    clearTimeout(timer);
    if (exit === null) note("hung");
    else if (exit.kind === "exited") note(`exited ${exit.code}`);
    else note(`signaled ${exit.signal}`);
  } catch (e) {
    note(e instanceof ProcessSpawnError ? `spawn error ${e.message}` : `${e}`);
  }
}

/** The pid of a zombie child of this process, or 0. */
function zombie(): number {
  const info = new Uint8Array(128);
  const at = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(info)));
  if (sysCall(SYS_WAITID, P_ALL, 0, at, WAIT_ANY_ZOMBIE, 0) < 0) return 0;
  return new DataView(info.buffer).getInt32(SI_PID, true);
}

console.log(JSON.stringify({ outcomes, handled, shared, zombie: zombie() }));
Deno.exit(0);
