/**
 * The program an {@linkcode IpaProxyIsolated} runs in its child process:
 * adopts the pipe socket from its last argument and serves the IPA module
 * named in the first message. Not for direct use.
 *
 * @module
 */
import { IpcPipeWorker } from "../pipe/ipc_pipe_worker.ts";
import { serveIpa } from "./_ipa_host.ts";

if (import.meta.main) {
  await serveIpa(IpcPipeWorker.fromArgs());
}
