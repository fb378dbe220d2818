// A "closed" vendor IPA module: no signature, so an IpaManager runs it in an
// isolated process. It reuses the open module's algorithm and adds a way to
// crash on purpose (a debug control in a request), to show crash reporting.
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

/** A vendor debug control: `true` in a request makes the IPA crash. */
export const VENDOR_CRASH_CONTROL = 0x8000_0001;

export function createIpa(
  ctx: IpaContext<CameraIpaInterface>,
): IpaImplementation<CameraIpaInterface> {
  const open = createOpen(ctx);
  return {
    ...open,
    queueRequest(params) {
      // A vendor bug on a debug control: the process dies; the owner gets a
      // crash event with the exit report.
      if (params.controls.get(VENDOR_CRASH_CONTROL) === true) {
        console.error("vendor-ae-awb: internal error, aborting");
        Deno.exit(70);
      }
      return open.queueRequest(params);
    },
  };
}
