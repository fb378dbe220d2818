// Baseline peer for flood_bench.ts: a message n makes it post n messages
// of 64 B, then "done".
declare const self: {
  onmessage: ((e: MessageEvent<number>) => void) | null;
  postMessage(msg: unknown): void;
};
const event = new Uint8Array(64);
self.onmessage = (e) => {
  for (let i = 0; i < e.data; i++) self.postMessage(event);
  self.postMessage("done");
};
