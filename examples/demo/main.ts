// `deno task demo`: several simulated cameras in one process, each with a
// pipeline handler and its own IPA (examples/ipa/vendor_ae_awb.ts, unsigned,
// so an isolated process by default). For a few seconds every camera
// streams frames: per frame a sync call (fillParams) and a statistics
// buffer passed by descriptor to the IPA, which answers with sensor
// controls. Then all cameras are stopped at once, the scenario that hung
// libcamera (nested sendSync, seed 000). A summary follows; `--json` adds
// it as one JSON object on the last line of stdout.
import { fromFileUrl } from "@std/path";
import { parseArgs } from "@std/cli/parse-args";
import {
  CameraIpa,
  IpaManager,
  IpaProxyIsolated,
  IpaProxyThread,
  ProcessIsolationError,
} from "../../mod.ts";
import { access } from "../../ffi/spawn.ts";
import { type CameraIpa as Ipa, SimCamera } from "./camera.ts";

const VENDOR = new URL("../ipa/vendor_ae_awb.ts", import.meta.url);
const EXAMPLES = fromFileUrl(new URL("../ipa", import.meta.url));
const KEY = new URL("../keys/example_ipa.pub", import.meta.url);

/** Options of {@linkcode runDemo}. */
export interface DemoOptions {
  cameras: number;
  seconds: number;
  placement: "thread" | "isolated" | "auto";
  crashOne: boolean;
  fps: number;
  /** Where status lines go; null for none. */
  status: ((lines: string[], final: boolean) => void) | null;
}

/** Per-camera figures of the summary. */
export interface CameraSummary {
  camera: number;
  placement: string;
  frames: number;
  syncP50Us: number;
  syncP99Us: number;
  eventP50Us: number;
  eventP99Us: number;
  stopMs: number;
  timeouts: number;
  crashed: string | null;
}

/** The summary; `timeouts` and `processesLeft` must be 0. */
export interface DemoSummary {
  cameras: CameraSummary[];
  timeouts: number;
  processesLeft: number;
  stopAllMs: number;
}

async function makeIpa(placement: DemoOptions["placement"]): Promise<Ipa> {
  if (placement === "thread") {
    return await IpaProxyThread.create(CameraIpa, VENDOR);
  }
  if (placement === "isolated") {
    return await IpaProxyIsolated.create(CameraIpa, VENDOR);
  }
  const key = Uint8Array.from(
    atob((await Deno.readTextFile(KEY)).trim()),
    (c) => c.charCodeAt(0),
  );
  const manager = new IpaManager({
    modulePath: [EXAMPLES],
    trustedKeys: [key],
  });
  return await manager.createIpa(CameraIpa, "vendor");
}

const us = (v: number) => Number.isNaN(v) ? "-" : `${Math.round(v)}`;

function statusLine(c: SimCamera): string {
  const state = c.crashed ? `CRASHED: ${c.crashed}` : c.ipa.state;
  return `cam${c.index} ${c.ipa.placement.padEnd(8)} frames ${
    String(c.frames).padStart(5)
  }  sync p50 ${us(c.sync.percentile(50)).padStart(5)} µs  event p50 ${
    us(c.events.percentile(50)).padStart(6)
  } µs  ${state}`;
}

/** Runs the demo and returns its summary. */
export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const cams: SimCamera[] = [];
  const pids: number[] = [];
  try {
    for (let i = 0; i < o.cameras; i++) {
      const ipa = await makeIpa(o.placement);
      if (ipa.pid !== null) pids.push(ipa.pid);
      cams.push(new SimCamera(i, ipa));
    }
    const crashFrame = Math.max(2, Math.floor((o.seconds * o.fps) / 2));
    cams.forEach((c, i) =>
      c.start(o.fps, o.crashOne && i === 0 ? crashFrame : -1)
    );
    const end = performance.now() + o.seconds * 1000;
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      o.status?.(cams.map(statusLine), false);
    }
    // Stop everything at once, as a camera manager does when the
    // application stops all cameras: back-to-back sync stop() calls.
    for (const c of cams) c.halt();
    const t0 = performance.now();
    for (const c of cams) c.stop();
    const stopAllMs = performance.now() - t0;
    o.status?.(cams.map(statusLine), true);
    await Promise.all(cams.map((c) => c.close()));
    await new Promise((r) => setTimeout(r, 50));
    const processesLeft = pids.filter((pid) => access(`/proc/${pid}`, 0) === 0)
      .length;
    const cameras = cams.map((c): CameraSummary => ({
      camera: c.index,
      placement: c.ipa.placement,
      frames: c.frames,
      syncP50Us: Math.round(c.sync.percentile(50)),
      syncP99Us: Math.round(c.sync.percentile(99)),
      eventP50Us: Math.round(c.events.percentile(50)),
      eventP99Us: Math.round(c.events.percentile(99)),
      stopMs: Number(c.stopMs.toFixed(2)),
      timeouts: c.timeouts,
      crashed: c.crashed,
    }));
    return {
      cameras,
      timeouts: cameras.reduce((s, c) => s + c.timeouts, 0),
      processesLeft,
      stopAllMs: Number(stopAllMs.toFixed(2)),
    };
  } finally {
    await Promise.all(cams.map((c) => c.close()));
  }
}

/** The summary as a table. */
export function summaryTable(s: DemoSummary): string {
  const head = [
    "camera",
    "placement",
    "frames",
    "sync p50 µs",
    "sync p99 µs",
    "event p50 µs",
    "event p99 µs",
    "stop ms",
    "timeouts",
    "status",
  ];
  const rows = s.cameras.map((c) => [
    `cam${c.camera}`,
    c.placement,
    String(c.frames),
    us(c.syncP50Us),
    us(c.syncP99Us),
    us(c.eventP50Us),
    us(c.eventP99Us),
    Number.isNaN(c.stopMs) ? "-" : c.stopMs.toFixed(2),
    String(c.timeouts),
    c.crashed ? `crashed: ${c.crashed}` : "ok",
  ]);
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  const line = (r: string[]) =>
    r.map((v, i) => i === r.length - 1 ? v : v.padEnd(widths[i])).join("  ");
  return [
    line(head),
    ...rows.map(line),
    "",
    `all stopped in ${
      s.stopAllMs.toFixed(2)
    } ms; timeouts ${s.timeouts}; processes left ${s.processesLeft}`,
  ].join("\n");
}

/** The isolation refusal behind `e` (an IPA error's cause), or null. */
export function isolationRefusal(e: unknown): ProcessIsolationError | null {
  for (let c = e; c instanceof Error; c = c.cause) {
    if (c instanceof ProcessIsolationError) return c;
  }
  return null;
}

/** What to tell the user when the kernel refuses to isolate the IPAs. */
export function isolationAdvice(e: ProcessIsolationError): string {
  const causes: string[] = [];
  for (let c: unknown = e; c instanceof Error; c = c.cause) {
    causes.push(`  ${c.name}: ${c.message}`);
  }
  return [
    "The IPAs could not be isolated: this system refuses what an isolated",
    "process needs (see the cause below). Run them in threads instead:",
    "",
    "  deno task demo --placement thread",
    "",
    ...causes,
  ].join("\n");
}

const HELP = `deno task demo [options]

Simulated cameras, each with its own IPA, streaming for a few seconds, then
all stopped at once.

  --cameras N       number of cameras (default 4)
  --seconds S       how long they stream (default 3)
  --placement P     thread | isolated | auto (default auto: the IpaManager
                    decides; the vendor module is unsigned, so isolated)
  --fps F           frames per second per camera (default 30)
  --crash-one       make camera 0's IPA crash half-way (isolated only)
  --json            also print the summary as JSON on the last line
  --help            this text`;

if (import.meta.main) {
  const args = parseArgs(Deno.args, {
    string: ["cameras", "seconds", "placement", "fps"],
    boolean: ["json", "crash-one", "help"],
    default: { cameras: "4", seconds: "3", placement: "auto", fps: "30" },
  });
  if (args.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const cameras = Number(args.cameras);
  const seconds = Number(args.seconds);
  const fps = Number(args.fps);
  const placement = args.placement as DemoOptions["placement"];
  const bad = (m: string) => {
    console.error(`${m}\n\n${HELP}`);
    Deno.exit(2);
  };
  if (!Number.isInteger(cameras) || cameras < 1 || cameras > 64) {
    bad("--cameras must be 1-64");
  }
  if (!(seconds > 0 && seconds <= 600)) bad("--seconds must be in (0, 600]");
  if (!(fps > 0 && fps <= 1000)) bad("--fps must be in (0, 1000]");
  if (!["thread", "isolated", "auto"].includes(placement)) {
    bad("--placement must be thread, isolated or auto");
  }
  if (args["crash-one"] && placement === "thread") {
    bad(
      "--crash-one needs an isolated IPA (a crash in a thread takes the process with it)",
    );
  }
  const tty = Deno.stdout.isTerminal();
  const out = new TextEncoder();
  let drawn = 0;
  let lastPlain = 0;
  const status = (lines: string[], final: boolean) => {
    if (tty) {
      let s = drawn > 0 ? `\x1b[${drawn}A` : "";
      for (const l of lines) s += `\x1b[2K${l}\n`;
      Deno.stdout.writeSync(out.encode(s));
      drawn = lines.length;
    } else if (final || performance.now() - lastPlain >= 1000) {
      lastPlain = performance.now();
      console.log(lines.join("\n"));
    }
  };
  console.log(
    `${cameras} cameras, ${seconds} s at ${fps} fps, placement ${placement}${
      args["crash-one"] ? ", camera 0 crashes half-way" : ""
    }`,
  );
  let summary: DemoSummary;
  try {
    summary = await runDemo({
      cameras,
      seconds,
      placement,
      fps,
      crashOne: args["crash-one"],
      status,
    });
  } catch (e) {
    const isolation = isolationRefusal(e);
    if (isolation === null) throw e;
    console.error(isolationAdvice(isolation));
    Deno.exit(3);
  }
  console.log(`\n${summaryTable(summary)}`);
  if (args.json) console.log(JSON.stringify(summary));
  Deno.exit(summary.timeouts === 0 && summary.processesLeft === 0 ? 0 : 1);
}
