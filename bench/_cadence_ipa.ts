// The IPA of bench/cadence_bench.ts: one sync method that answers 64 bytes
// of statistics with 64 bytes of results, as an IPA does once per frame.
import {
  defineIpaInterface,
  type IpaImplementation,
  type IpaModuleInfo,
  T,
} from "../mod.ts";

export const CadenceIpa = defineIpaInterface({
  name: "cadence",
  version: 1,
  methods: {
    processStats: {
      sync: true,
      params: T.struct({ frame: T.u32, stats: T.bytes }),
      result: T.struct({ frame: T.u32, gains: T.bytes }),
    },
  },
  events: {},
  lifecycle: "always-running",
});

export const ipaModuleInfo: IpaModuleInfo = {
  name: "cadence-bench",
  pipelineName: "bench",
  apiVersion: 1,
};

export function createIpa(): IpaImplementation<typeof CadenceIpa> {
  return {
    processStats: ({ frame, stats }) => ({ frame, gains: stats }),
  };
}
