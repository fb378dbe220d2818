// One contender of bench/cadence_ab.ts in a process of its own, loaded from
// the source tree ROOT (so that two trees can be compared in one run):
// BACK_TO_BACK calls first (the path's JIT tier depends on them), then
// CALLS calls at 30 fps; prints the 30 fps round trips (µs) as JSON.
//
//   deno run ... bench/_cadence_ab_driver.ts ROOT MODE CALLS BACK_TO_BACK
//
// MODE: ffi (the minimal Deno FFI pair), blocking / serve (isola sendSync
// -> serveBlocking() / serve()), blocking-warm / serve-warm (the same with
// the pipe's keepWarm), ipa (the isolated IPA proxy), and three
// that take the path apart: sync-echo (isola sendSync -> the minimal Deno
// echo child: the parent's side alone), ffi-worker (the minimal Deno parent
// -> an isola serveBlocking() worker: the worker's side alone), stub (the
// one-crossing stub called from JS with nothing around it -> the echo
// child: the transport alone).
const [root, mode, callsArg, backToBackArg] = Deno.args;
const FRAME_US = 33_333;
/** Bytes of each request (as bench/_cadence_contenders.ts). */
const MSG_SIZE = 64;
const CALL_TIMEOUT_MS = 2000;
/** Frame header of the isola wire format: u32 size, u16 fds, flags, version. */
const FRAME_HEADER = 8;
/** Message header: u32 cmd, u32 cookie. */
const MSG_HEADER = 8;
const FRAME_VERSION = 1;
const MSG_NOSIGNAL = 0x4000;

const at = (path: string) => `file://${root}/${path}`;
const C = await import(at("bench/_cadence_contenders.ts"));
const isola = await import(at("mod.ts"));

interface Runner {
  run(regime: unknown): Promise<number[]>;
  close(): Promise<void>;
}

/** A socketpair end for us and a child running `args` with the other. */
async function child(
  args: string[],
): Promise<{ fd: number; done(): Promise<void> }> {
  const { SOCK, socketpair } = await import(at("ffi/socket.ts"));
  const { close } = await import(at("ffi/unistd.ts"));
  const sv = socketpair(
    SOCK.AF_UNIX,
    SOCK.SOCK_SEQPACKET | SOCK.SOCK_CLOEXEC,
  );
  if (typeof sv === "number") throw new Error(`socketpair: ${sv}`);
  const proc = isola.Process.spawn(Deno.execPath(), {
    args: [...args, `${sv[1]}`],
    keepFds: [sv[1]],
  });
  close(sv[1]);
  return {
    fd: sv[0],
    async done() {
      close(sv[0]);
      await proc.exited;
    },
  };
}

async function contender(): Promise<Runner> {
  if (mode === "ffi") return C.ffiPair(1);
  if (mode === "blocking" || mode === "serve") {
    return C.pipePair(mode, 1, mode);
  }
  if (mode === "blocking-warm" || mode === "serve-warm") {
    const base = mode === "blocking-warm" ? "blocking" : "serve";
    return C.pipePair(mode, 1, base, undefined, true);
  }
  if (mode === "ipa") return await C.ipaPair(1);
  const echo = ["run", "--allow-ffi", `${root}/bench/_cadence_ffi_echo.ts`];
  if (mode === "sync-echo") {
    const pipe = new isola.IpcPipeUnixSocket(Deno.execPath(), {
      args: echo,
      timeout: CALL_TIMEOUT_MS,
    });
    const data = new Uint8Array(MSG_SIZE);
    const call = () => {
      using _reply = pipe.sendSync({ cmd: 1, data });
    };
    return { run: (r) => C.paced(r, call), close: () => pipe.close() };
  }
  if (mode === "ffi-worker" || mode === "stub") {
    const peer = await child(
      mode === "stub" ? echo : [
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-env",
        `${root}/bench/_cadence_worker.ts`,
        "blocking",
        "default",
      ],
    );
    const frame = new Uint8Array(FRAME_HEADER + MSG_HEADER + MSG_SIZE);
    const view = new DataView(frame.buffer);
    view.setUint32(0, MSG_HEADER + MSG_SIZE, true);
    frame[7] = FRAME_VERSION;
    view.setUint32(FRAME_HEADER, 1, true); // cmd
    if (mode === "stub") {
      const { fastSyncPath } = await import(at("src/pipe/_sync_reader.ts"));
      const f = fastSyncPath();
      if (f === null) throw new Error("no one-crossing stub here");
      f.block.socket(peer.fd, -1);
      f.block.receiver(-1, 0, 0, 0n, 0n);
      f.block.recv(f.rxHdr);
      f.block.send(f.txHdr);
      f.block.wait(-1, 0, CALL_TIMEOUT_MS);
      f.tx.data.set(frame);
      f.tx.prepareSend(frame.length, []);
      const call = () => {
        f.rx.prepareRecv();
        f.block.call();
      };
      return { run: (r) => C.paced(r, call), close: peer.done };
    }
    const libc = Deno.dlopen("libc.so.6", {
      recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
      send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
    });
    const reply = new Uint8Array(2 * frame.length);
    let cookie = 1;
    const call = () => {
      view.setUint32(FRAME_HEADER + 4, cookie++, true);
      libc.symbols.send(peer.fd, frame, BigInt(frame.length), MSG_NOSIGNAL);
      libc.symbols.recv(peer.fd, reply, BigInt(reply.length), 0);
    };
    return {
      run: (r) => C.paced(r, call),
      async close() {
        await peer.done();
        libc.close();
      },
    };
  }
  throw new TypeError(`Unknown mode "${mode}"`);
}

const c = await contender();
await c.run({
  name: "back to back",
  pipes: 1,
  periodUs: 0,
  calls: Number(backToBackArg),
});
const samples = await c.run({
  name: "30 fps",
  pipes: 1,
  periodUs: FRAME_US,
  calls: Number(callsArg),
});
console.log(JSON.stringify(samples));
await c.close();
