// A "closed" vendor IPA module: no signature, so an IpaManager runs it in an
// isolated process. It reuses the open module's algorithm and adds a way to
// crash on purpose (tuning "crash"), to show crash reporting.
import type {
  CameraIpaInterface,
  IpaContext,
  IpaImplementation,
  IpaModuleInfo,
} from "../../mod.ts";
import { createIpa as createOpen } from "./open_ae_awb.ts";

export const ipaModuleInfo: IpaModuleInfo = {
  name: "vendor-ae-awb",
  pipelineName: "vendor",
  apiVersion: 1,
};

export function createIpa(
  ctx: IpaContext<CameraIpaInterface>,
): IpaImplementation<CameraIpaInterface> {
  const open = createOpen(ctx);
  return {
    ...open,
    init(params) {
      if (
        params.tuning && new TextDecoder().decode(params.tuning) === "crash"
      ) {
        // A vendor bug: the process dies; the owner gets a crash event.
        setTimeout(() => Deno.exit(70), 0);
      }
      return open.init(params);
    },
  };
}
