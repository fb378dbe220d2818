// Bench worker for IpcPipeUnixSocket: echoes calls (cmd 1); cmd 2 emits
// u32 events then replies. `--blocking` serves with serveBlocking().
import { IpcPipeWorker } from "../mod.ts";

const worker = IpcPipeWorker.fromArgs();
const handlers = {
  onCall(msg: { cmd: number; data: Uint8Array; fds: readonly unknown[] }) {
    if (msg.cmd === 2) {
      const n = new DataView(msg.data.buffer, msg.data.byteOffset).getUint32(
        0,
        true,
      );
      const ev = new Uint8Array(64);
      for (let i = 0; i < n; i++) worker.emit({ cmd: 100, data: ev });
      return { cmd: 2 };
    }
    return { cmd: msg.cmd, data: msg.data, fds: msg.fds as never };
  },
};
if (Deno.args[0] === "--blocking") worker.serveBlocking(handlers);
else await worker.serve(handlers);
