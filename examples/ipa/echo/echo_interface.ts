// The Echo IPA interface: the smallest complete example of an interface,
// with a lifecycle (start/stop), a sync method with a result, an async
// method and an event. The caller and the module both import it.
import { defineIpaInterface, T } from "../../../mod.ts";

export const Echo = defineIpaInterface({
  name: "echo",
  version: 1,
  methods: {
    start: { sync: true, params: T.struct({}) },
    stop: { sync: true, params: T.struct({}) },
    echo: {
      sync: true,
      params: T.struct({ text: T.string }),
      result: T.string,
    },
    poke: { sync: false, params: T.struct({ n: T.u32 }) },
  },
  events: { poked: T.struct({ n: T.u32 }) },
  // start() makes it running (poke accepted, events delivered), stop() ends
  // that; without this line the declaration is refused.
  lifecycle: { start: "start", stop: "stop" },
});
