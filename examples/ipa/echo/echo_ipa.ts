// An IPA module for the Echo interface (echo_interface.ts): answers echo()
// and emits `poked` for each poke(). It lives in its own directory so that
// an IpaManager searching examples/ipa does not try it for a camera.
import type {
  IpaContext,
  IpaImplementation,
  IpaModuleInfo,
} from "../../../mod.ts";
import type { Echo } from "./echo_interface.ts";

export const ipaModuleInfo: IpaModuleInfo = {
  name: "echo",
  pipelineName: "echo",
  apiVersion: 1,
};

export function createIpa(
  ctx: IpaContext<typeof Echo>,
): IpaImplementation<typeof Echo> {
  return {
    start: () => {},
    stop: () => {},
    echo: ({ text }) => text,
    poke: ({ n }) => ctx.emit("poked", { n }),
  };
}
