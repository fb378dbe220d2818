// The Worker an IpaProxyThread runs its module in: adopts the socket end it
// is posted and serves the IPA module over it, as the isolated worker does.
import { IpcPipeWorker } from "../pipe/ipc_pipe_worker.ts";
import { serveIpa } from "./_ipa_host.ts";

declare const self: {
  onmessage: ((e: MessageEvent<{ fd: number }>) => void) | null;
  postMessage(msg: unknown): void;
};

self.onmessage = async (e) => {
  self.onmessage = null;
  await serveIpa(new IpcPipeWorker(e.data.fd));
  self.postMessage("done");
};
