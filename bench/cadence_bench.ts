// The back-to-back part of the cadence benchmark as a `deno bench` (the
// paced part, 30 fps, is `deno task bench:cadence`: bench/cadence.ts). One
// sync call of 64 bytes each way, against the minimal Deno FFI echo pair.
import {
  type Contender,
  ffiPair,
  ipaPair,
  pipePair,
} from "./_cadence_contenders.ts";

const GROUP = "sync call 64 B, back to back";
const contenders: Contender[] = [
  ffiPair(1),
  pipePair("isola sendSync -> serveBlocking()", 1, "blocking"),
  pipePair("isola sendSync -> serve()", 1, "serve"),
  await ipaPair(1),
];
contenders.forEach((c, i) => {
  const call = c.call!;
  Deno.bench({
    name: c.name,
    group: GROUP,
    baseline: i === 0,
    fn() {
      call(0);
    },
  });
});
globalThis.addEventListener("unload", () => {
  // Children end when their sockets close with this process.
  for (const c of contenders) c.close();
});
