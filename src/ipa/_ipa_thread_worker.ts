// The Worker an IpaProxyThread runs its module in: adopts the socket end it
// is posted and serves the IPA module over it, as the isolated worker does.
//
// An uncaught error or unhandled rejection in the module kills the Worker, and
// so does Deno.exit() (silently: the owner gets no `error` event for it).
// Its owner may be blocked in a sync call, reading the socket, unable to see
// the Worker's `error` event until the call ends; so before dying the Worker
// writes why into the shared crash report and shuts its socket end down:
// the owner's read ends at once and fails the call with the reason (an
// isolated IPA's death is seen the same way, through its pidfd).
import { shutdown, SOCK } from "../../ffi/socket.ts";
import { IpcPipeWorker } from "../pipe/ipc_pipe_worker.ts";
import { serveIpa } from "./_ipa_host.ts";
import { writeCrashReport } from "./_ipa_thread_crash.ts";

interface Start {
  fd: number;
  crashReport: SharedArrayBuffer;
}

declare const self: {
  onmessage: ((e: MessageEvent<Start>) => void) | null;
  postMessage(msg: unknown): void;
  addEventListener(
    type: "error" | "unhandledrejection" | "unload",
    listener: (e: ErrorEvent & PromiseRejectionEvent) => void,
  ): void;
};

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

self.onmessage = async (e) => {
  self.onmessage = null;
  const { fd, crashReport } = e.data;
  const crash = (text: string) => {
    writeCrashReport(crashReport, text);
    // The owner's reads end (SHUT_WR); this end stays open and readable, so
    // the serve loop does not close it: the owner closes it once the Worker
    // is gone.
    shutdown(fd, SOCK.SHUT_WR);
  };
  // Not prevented: the error still ends the Worker and reaches the owner.
  self.addEventListener("error", (ev) => {
    crash(`Uncaught ${describe(ev.error ?? ev.message)}`);
  });
  self.addEventListener("unhandledrejection", (ev) => {
    crash(`Uncaught (in promise) ${describe(ev.reason)}`);
  });
  let served = false;
  // Deno.exit() in a Worker ends only the Worker, with `unload`.
  self.addEventListener("unload", () => {
    if (!served) crash(`the module called Deno.exit(${Deno.exitCode})`);
  });
  await serveIpa(new IpcPipeWorker(fd));
  served = true;
  self.postMessage("done");
};
