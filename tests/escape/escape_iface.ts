// The IPA interface of the malicious module in tests/escape: one call that
// runs the attacker program from inside the isolated IPA worker.
import { defineIpaInterface, T } from "../../mod.ts";

export const EscapeIpa = defineIpaInterface({
  name: "escape",
  version: 1,
  methods: {
    init: { sync: true, params: T.struct({}) },
    start: { sync: true, params: T.struct({}) },
    stop: { sync: true, params: T.struct({}) },
    attack: {
      sync: true,
      params: T.struct({ program: T.string, args: T.array(T.string) }),
      result: T.struct({ table: T.string, error: T.optional(T.string) }),
    },
  },
  events: {},
  lifecycle: { start: "start", stop: "stop" },
});
