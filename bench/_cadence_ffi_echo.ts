// The minimal Deno FFI echo of bench/cadence_bench.ts (no isola on the
// path): blocking recv(2) then send(2) of each record on the socket whose
// number is the last argument, until end of stream.
const libc = Deno.dlopen("libc.so.6", {
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
});
const MSG_NOSIGNAL = 0x4000;
const fd = Number(Deno.args.at(-1));
const buf = new Uint8Array(64 * 1024);
const capacity = BigInt(buf.length);
for (;;) {
  const n = libc.symbols.recv(fd, buf, capacity, 0);
  if (n <= 0) break;
  libc.symbols.send(fd, buf, BigInt(n), MSG_NOSIGNAL);
}
