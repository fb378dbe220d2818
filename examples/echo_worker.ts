// A pipe worker program (README, "Calls to a worker process"): answers every
// call with its bytes reversed and the descriptors it got, and emits event
// cmd 100 for each async message. Run by a parent as
// `deno run --allow-ffi --allow-read examples/echo_worker.ts <socket fd>`.
import { IpcPipeWorker } from "../mod.ts";

const worker = IpcPipeWorker.fromArgs();
await worker.serve({
  onCall: (msg) => ({
    cmd: msg.cmd,
    data: msg.data.toReversed(),
    fds: msg.fds,
  }),
  onMessage: (msg) => worker.emit({ cmd: 100, data: msg.data }),
});
