// Baseline child: echoes every stdin line to stdout (Deno.Command pipes).
const buf = new Uint8Array(1 << 16);
for (;;) {
  const n = await Deno.stdin.read(buf);
  if (n === null) break;
  let off = 0;
  while (off < n) off += await Deno.stdout.write(buf.subarray(off, n));
}
