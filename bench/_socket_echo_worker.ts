// Bench peer: adopts a socket end and serves until hang-up.
// data[0] = 0: echo bytes and fds; 1: sink (count, no reply);
// 2: reply with the count of messages sunk so far (u32) and reset it.
import { IpcClosedError, IpcUnixSocket } from "../mod.ts";

declare const self: {
  onmessage: ((e: MessageEvent<{ fd: number; spin?: number }>) => void) | null;
  postMessage(msg: unknown): void;
};

self.onmessage = (e) => {
  const sock = new IpcUnixSocket();
  sock.bind(e.data.fd);
  self.postMessage("ready");
  let sunk = 0;
  for (;;) {
    let msg;
    try {
      msg = sock.receive({ spin: e.data.spin ?? 0 });
    } catch (err) {
      if (err instanceof IpcClosedError) break;
      throw err;
    }
    using m = msg;
    if (m.data[0] === 0) {
      sock.send({ data: m.data, fds: m.fds });
    } else if (m.data[0] === 1) {
      sunk++;
    } else {
      sock.send({ data: Uint8Array.of(sunk & 0xff, (sunk >> 8) & 0xff) });
      sunk = 0;
    }
  }
  sock.close();
};
