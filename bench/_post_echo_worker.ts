// Baseline peer: echoes every postMessage back.
declare const self: {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(msg: unknown): void;
};
self.onmessage = (e) => self.postMessage(e.data);
