// The IPA layer's use of an IPC pipe, shared by the proxies and the host.
//
//   cmd INIT (0x7fff0000), a call: JSON { module, interface, pipelineName? }
//     reply: JSON { info } once the module is loaded and made, or an error
//   cmd i + 1, a call (sync method i) or an async message (async method i):
//     the parameters, encoded (ipa_serializer.ts); a call's reply is the
//     encoded result (empty without one)
//   cmd i + 1, an event from the host (cookie 0): event i's payload
import type { IpaModuleInfo } from "./ipa_module.ts";
import type { IpaInterfaceSpec } from "./ipa_schema.ts";

export const CMD_INIT = 0x7fff0000;

export interface InitRequest {
  module: string;
  interface: IpaInterfaceSpec;
  /** When set, a module serving another pipeline is refused (mismatch). */
  pipelineName?: string;
}

export interface InitReply {
  info: IpaModuleInfo;
}

/**
 * Error code (IpcCallError) of an INIT refused because the module serves
 * another pipeline; the text is that pipeline's name.
 */
export const ERROR_PIPELINE_MISMATCH = 1;

export const json = {
  encode(v: unknown): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(v));
  },
  decode<T>(b: Uint8Array): T {
    return JSON.parse(new TextDecoder().decode(b)) as T;
  },
};
