// The isola worker of bench/cadence_bench.ts: echoes each call. First
// argument `blocking` serves with serveBlocking(), `serve` with serve();
// the second is serveBlocking()'s spin in µs ("default" for the default).
import { IpcPipeWorker } from "../mod.ts";

const worker = IpcPipeWorker.fromArgs();
const handlers = {
  onCall(msg: { cmd: number; data: Uint8Array }) {
    return { cmd: msg.cmd, data: msg.data };
  },
};
if (Deno.args[0] === "blocking") {
  const spin = Deno.args[1] === "default" ? undefined : Number(Deno.args[1]);
  worker.serveBlocking(handlers, { spin });
} else {
  await worker.serve(handlers);
}
