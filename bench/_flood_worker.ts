// Bench worker for flood_bench.ts: an async message cmd 1 with a u32 n
// makes it emit n events of 64 B (cmd 100) as fast as its socket takes
// them, then one event cmd 101 (done).
import { IpcPipeWorker } from "../mod.ts";

const worker = IpcPipeWorker.fromArgs();
const event = new Uint8Array(64);
await worker.serve({
  onMessage(msg) {
    if (msg.cmd !== 1) return;
    const n = new DataView(msg.data.buffer, msg.data.byteOffset).getUint32(
      0,
      true,
    );
    // A socket kept full by the receive window blocks each emit briefly.
    for (let i = 0; i < n; i++) worker.emit({ cmd: 100, data: event });
    worker.emit({ cmd: 101 });
  },
});
