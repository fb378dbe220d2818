// Fuzzers of the two places where isola reads what another process wrote:
// the frame decoder behind IpcUnixSocket.receive() (docs/wire.md) and the
// IPA deserializer decodeIpa() (docs/ipa_wire.md). Each run is
// deterministic from its seed. The full runs are in fuzz_stress.ts, short
// ones in ../fuzz_light_test.ts; failing inputs are saved with saveCases()
// and replayed by ../regressions_test.ts.
import { fromFileUrl } from "@std/path";
import {
  CameraIpa,
  createMemfd,
  IpcClosedError,
  IpcProtocolError,
  IpcTimeoutError,
  IpcUnixSocket,
  type IpcUnixSocketOptions,
  OwnedFd,
} from "../../mod.ts";
import {
  type IpaInterface,
  type IpaType,
  T,
} from "../../src/ipa/ipa_schema.ts";
import {
  decodeIpa,
  encodeIpa,
  IpaDecodeError,
} from "../../src/ipa/ipa_serializer.ts";
import { epollCreate } from "../../ffi/epoll.ts";
import { MSG, MsgBuffers, SOCK, socketpair } from "../../ffi/socket.ts";
import { eventfd, O, open, pipe2 } from "../../ffi/spawn.ts";
import { close, F, fcntl } from "../../ffi/unistd.ts";
import { FLAG_MEMFD, HEADER_SIZE, INLINE_MAX } from "../../src/ipc/_frame.ts";
import { type FdSnapshot, fdSnapshot, openFds, pattern } from "../_helpers.ts";
import { TestIpa } from "../fixtures/ipa_test_iface.ts";

/** One failing input, as saved under `tests/regressions/`. */
export interface SavedCase {
  /** Which fuzzer found it. */
  kind: "frame" | "ipa";
  /** The run's seed. */
  seed: number;
  /** The input's index in the run. */
  index: number;
  /** The record (frame) or encoded value (ipa), base64. */
  bytes: string;
  /** Descriptors that came with it. */
  fdCount: number;
  /** What was sent and what went wrong. */
  description: string;
  /** frame: the kind of each descriptor, in order (see FD_KINDS). */
  fdKinds?: string[];
  /** frame: the receiver's options when it was found. */
  options?: IpcUnixSocketOptions;
  /**
   * frame: the peer sent the record, then a known-good frame, then hung
   * up; the receiver must read both and then see the end of the stream.
   */
  hangUp?: boolean;
  /** ipa: the name of the type decoded (a key of IPA_TYPES). */
  ipaType?: string;
}

/** What a fuzz run did. */
export interface FuzzCounts {
  /** Inputs fed to the code under test (known-good frames included). */
  inputs: number;
  /** Inputs that decoded to a value or message. */
  accepted: number;
  /** Typed rejections, by `reason`. */
  rejectedByReason: Record<string, number>;
  /** Everything else: other exceptions, hangs, leaks, desyncs. */
  failures: SavedCase[];
  /** frame: records the kernel refused to send (nothing to receive). */
  notSent?: number;
  /** frame: known-good frames interleaved and checked intact. */
  knownGood?: number;
  /** frame: peers that hung up after a burst (each checked to the end). */
  hangUps?: number;
}

/** Failures kept per run (the count of inputs goes on). */
const MAX_SAVED_FAILURES = 50;

// ---------------------------------------------------------------------------
// Deterministic randomness

/** mulberry32: small, fast, and good enough to pick mutations. */
export class Rng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of `a`. */
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

// ---------------------------------------------------------------------------
// Small byte helpers

function setU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Base64 of `bytes` (chunked: records can be 170 KB). */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** The bytes of a base64 string. */
export function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Descriptors open now that were not in `before`, by kind ("2 x socket"). */
function leakedSince(before: FdSnapshot): string[] {
  const out: string[] = [];
  for (const [k, fds] of fdSnapshot()) {
    const had = before.get(k)?.length ?? 0;
    if (fds.length > had) out.push(`${fds.length - had} x ${k}`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Descriptors a raw peer attaches

/** Sizes of the sealed memfds in the pool (the memfd flag needs one). */
const SEALED_SIZES = [0, 7, 100, 4096, 140_000] as const;

/**
 * Every kind of descriptor the frame fuzzer attaches: memfds sealed and
 * not, partly sealed, pipe ends, an eventfd, an epoll instance, a stream
 * socket, /dev/null, and both ends of the socket under test.
 */
export const FD_KINDS: readonly string[] = [
  "memfd",
  ...SEALED_SIZES.map((n) => `memfd-sealed-${n}`),
  "memfd-seal-write-only",
  "memfd-seal-grow-shrink-only",
  "pipe-read",
  "pipe-write",
  "eventfd",
  "epoll",
  "socket-stream",
  "dev-null",
  "peer-socket",
  "own-socket",
];

function check(r: number, what: string): number {
  if (r < 0) throw new Error(`Cannot create fuzz descriptor: ${what} ${r}`);
  return r;
}

function partlySealedMemfd(seals: number): number {
  const fd = createMemfd({ data: pattern(64, 3) }).release();
  check(fcntl(fd, F.F_ADD_SEALS, seals), "F_ADD_SEALS");
  return fd;
}

/**
 * Opens descriptors of the given kinds (one each; "peer-socket" and
 * "own-socket" are borrowed from the pair, not opened). Returns kind ->
 * fd and the list this call opened (to close).
 */
function openKinds(
  kinds: readonly string[],
  sock: IpcUnixSocket,
  peer: number,
): { byKind: Map<string, number>; opened: number[] } {
  const byKind = new Map<string, number>();
  const opened: number[] = [];
  const add = (kind: string, fd: number, own = true) => {
    byKind.set(kind, fd);
    if (own) opened.push(fd);
  };
  for (const kind of new Set(kinds)) {
    if (kind === "memfd") {
      add(kind, createMemfd({ data: pattern(64, 2) }).release());
    } else if (kind.startsWith("memfd-sealed-")) {
      const n = Number(kind.slice("memfd-sealed-".length));
      add(kind, createMemfd({ data: pattern(n, n), seal: true }).release());
    } else if (kind === "memfd-seal-write-only") {
      add(kind, partlySealedMemfd(F.F_SEAL_WRITE));
    } else if (kind === "memfd-seal-grow-shrink-only") {
      add(kind, partlySealedMemfd(F.F_SEAL_GROW | F.F_SEAL_SHRINK));
    } else if (kind === "pipe-read" || kind === "pipe-write") {
      const p = pipe2(O.O_CLOEXEC);
      if (typeof p === "number") check(p, "pipe2");
      const [r, w] = p as [number, number];
      if (kind === "pipe-read") {
        add(kind, r);
        close(w);
      } else {
        add(kind, w);
        close(r);
      }
    } else if (kind === "eventfd") {
      add(kind, check(eventfd(0, O.O_CLOEXEC), "eventfd"));
    } else if (kind === "epoll") {
      add(kind, check(epollCreate(O.O_CLOEXEC), "epoll_create1"));
    } else if (kind === "socket-stream") {
      const p = socketpair(SOCK.AF_UNIX, SOCK.SOCK_STREAM | SOCK.SOCK_CLOEXEC);
      if (typeof p === "number") check(p, "socketpair");
      const [a, b] = p as [number, number];
      add(kind, a);
      close(b);
    } else if (kind === "dev-null") {
      add(kind, check(open("/dev/null", O.O_RDONLY | O.O_CLOEXEC), "open"));
    } else if (kind === "peer-socket") {
      add(kind, peer, false);
    } else if (kind === "own-socket") {
      add(kind, sock.fd, false);
    } else {
      throw new Error(`Unknown fuzz descriptor kind: ${kind}`);
    }
  }
  return { byKind, opened };
}

// ---------------------------------------------------------------------------
// Frames

/** One record the raw peer sends. */
interface Record_ {
  bytes: Uint8Array;
  fdKinds: string[];
  notes: string[];
  /** An unmutated valid frame the receiver must accept. */
  mustAccept: boolean;
}

const INTERESTING_SIZES = [
  0,
  1,
  7,
  8,
  100,
  4096,
  INLINE_MAX - 1,
  INLINE_MAX,
  INLINE_MAX + 1,
  140_000,
  0x3fffffff,
  0x40000000,
  0x40000001,
  0x7fffffff,
  0x80000000,
  0xffffffff,
];

const PLAIN_KINDS = FD_KINDS.filter((k) => !k.startsWith("memfd-sealed-"));

function randomFdKinds(r: Rng, n: number): string[] {
  return Array.from({ length: n }, () => r.pick(FD_KINDS));
}

function header(size: number, nfds: number, flags: number, version = 1) {
  const b = new Uint8Array(HEADER_SIZE);
  setU32(b, 0, size);
  b[4] = nfds & 0xff;
  b[5] = (nfds >>> 8) & 0xff;
  b[6] = flags;
  b[7] = version;
  return b;
}

function fdCountFor(r: Rng): number {
  return r.chance(0.4) ? 0 : 1 + r.int(5);
}

/** A frame that follows the wire format (before mutation). */
function validFrame(r: Rng, maxFds: number, maxSize: number): Record_ {
  const nfds = fdCountFor(r);
  const fdKinds = Array.from({ length: nfds }, () => r.pick(PLAIN_KINDS));
  if (r.chance(0.3)) {
    const size = r.pick(SEALED_SIZES);
    fdKinds.push(`memfd-sealed-${size}`);
    return {
      bytes: header(size, nfds, FLAG_MEMFD),
      fdKinds,
      notes: [`memfd frame of ${size} bytes, ${nfds} fds`],
      mustAccept: fdKinds.length <= maxFds && size <= maxSize,
    };
  }
  const size = r.chance(0.05) ? r.int(INLINE_MAX + 1) : r.int(200);
  return {
    bytes: concat(header(size, nfds, 0), pattern(size, size + 1)),
    fdKinds,
    notes: [`inline frame of ${size} bytes, ${nfds} fds`],
    mustAccept: nfds <= maxFds && size <= maxSize,
  };
}

/** Applies one mutation to `rec` in place; notes what it did. */
function mutateFrame(r: Rng, rec: Record_): void {
  rec.mustAccept = false;
  const b = rec.bytes;
  const hasHeader = b.length >= HEADER_SIZE;
  switch (r.int(12)) {
    case 0: { // flip a bit, usually in the header
      if (b.length === 0) return;
      const at = hasHeader && r.chance(0.6) ? r.int(8) : r.int(b.length);
      const bit = r.int(8);
      b[at] ^= 1 << bit;
      rec.notes.push(`bit ${bit} of byte ${at} flipped`);
      return;
    }
    case 1: { // truncate
      const n = r.int(b.length + 1);
      rec.bytes = b.slice(0, n);
      rec.notes.push(`truncated to ${n} bytes`);
      return;
    }
    case 2: { // extend
      const extra = r.bytes(1 + r.int(r.chance(0.1) ? 1000 : 16));
      rec.bytes = concat(b, extra);
      rec.notes.push(`${extra.length} bytes appended`);
      return;
    }
    case 3: // size field
      if (!hasHeader) return;
      {
        const v = r.chance(0.7)
          ? r.pick(INTERESTING_SIZES)
          : (b.length - HEADER_SIZE + r.int(5) - 2) >>> 0;
        setU32(b, 0, v);
        rec.notes.push(`size field = ${v}`);
      }
      return;
    case 4: // nfds field
      if (!hasHeader) return;
      {
        const v = r.pick([0, 1, 2, 5, 252, 253, 254, 0x8000, 0xffff]);
        b[4] = v & 0xff;
        b[5] = v >>> 8;
        rec.notes.push(`nfds field = ${v}`);
      }
      return;
    case 5: // flags field
      if (!hasHeader) return;
      b[6] = r.pick([0, 1, 2, 3, 0x80, 0xfe, 0xff, r.int(256)]);
      rec.notes.push(`flags field = ${b[6]}`);
      return;
    case 6: // version field
      if (!hasHeader) return;
      b[7] = r.pick([0, 2, 0x81, 0xff, r.int(256)]);
      rec.notes.push(`version field = ${b[7]}`);
      return;
    case 7: { // one descriptor more
      const k = r.pick(FD_KINDS);
      rec.fdKinds.splice(r.int(rec.fdKinds.length + 1), 0, k);
      rec.notes.push(`extra fd ${k}`);
      return;
    }
    case 8: { // one descriptor less
      if (rec.fdKinds.length === 0) return;
      const [k] = rec.fdKinds.splice(r.int(rec.fdKinds.length), 1);
      rec.notes.push(`fd ${k} dropped`);
      return;
    }
    case 9: { // the last descriptor (the memfd's place) of another kind
      const k = r.pick(FD_KINDS);
      if (rec.fdKinds.length === 0) rec.fdKinds.push(k);
      else rec.fdKinds[rec.fdKinds.length - 1] = k;
      rec.notes.push(`last fd now ${k}`);
      return;
    }
    case 10: // toggle the memfd flag
      if (!hasHeader) return;
      b[6] ^= FLAG_MEMFD;
      rec.notes.push("memfd flag toggled");
      return;
    default: { // overwrite a random byte
      if (b.length === 0) return;
      const at = r.int(b.length);
      b[at] = r.int(256);
      rec.notes.push(`byte ${at} = ${b[at]}`);
      return;
    }
  }
}

/** The next fuzz record: random, mutated, oversized or with many fds. */
function nextRecord(r: Rng, maxFds: number, maxSize: number): Record_ {
  const roll = r.next();
  if (roll < 0.2) { // random bytes, half of them with a plausible header
    const n = r.chance(0.02)
      ? r.int(4096)
      : r.chance(0.5)
      ? r.int(9)
      : r.int(64);
    const bytes = r.bytes(n);
    if (n >= HEADER_SIZE && r.chance(0.5)) {
      bytes[6] &= FLAG_MEMFD;
      bytes[7] = 1;
    }
    return {
      bytes,
      fdKinds: randomFdKinds(r, fdCountFor(r)),
      notes: [`${n} random bytes`],
      mustAccept: false,
    };
  }
  if (roll < 0.205) { // longer than the receive buffer: MSG_TRUNC
    const n = HEADER_SIZE + INLINE_MAX + 1 + r.int(40_000);
    const bytes = concat(header(n - HEADER_SIZE, 0, 0), pattern(n - 8, n));
    return {
      bytes,
      fdKinds: randomFdKinds(r, r.int(3)),
      notes: [`oversized record of ${n} bytes`],
      mustAccept: false,
    };
  }
  if (roll < 0.24) { // more descriptors than the receiver takes
    const n = maxFds < 253 ? maxFds + 1 + r.int(6) : 253;
    const kinds = Array.from({ length: n }, () => r.pick(PLAIN_KINDS));
    return {
      bytes: header(0, n, 0),
      fdKinds: kinds,
      notes: [`valid frame with ${n} fds`],
      mustAccept: n <= maxFds,
    };
  }
  const rec = validFrame(r, maxFds, maxSize);
  if (roll < 0.3) return rec; // unmutated: must be accepted
  const mutations = 1 + r.int(3);
  for (let m = 0; m < mutations; m++) mutateFrame(r, rec);
  return rec;
}

/** What one record did to the receiver. */
type Outcome =
  | { ok: true; accepted: true; data: Uint8Array; nfds: number }
  | { ok: true; accepted: false; reason: string }
  | { ok: false; error: string };

function receiveOne(sock: IpcUnixSocket): Outcome {
  try {
    using msg = sock.receive({ timeout: 1000 });
    return { ok: true, accepted: true, data: msg.data, nfds: msg.fds.length };
  } catch (e) {
    if (e instanceof IpcProtocolError) {
      return { ok: true, accepted: false, reason: e.reason };
    }
    if (e instanceof IpcTimeoutError) {
      return { ok: false, error: `hang: ${errorText(e)}` };
    }
    return { ok: false, error: errorText(e) };
  }
}

/**
 * One receiver and its raw peer, with a pool of descriptors to attach (one
 * of each kind, reused: sendmsg duplicates them into the receiver).
 */
export class FrameRig implements Disposable {
  readonly sock: IpcUnixSocket;
  readonly peer: OwnedFd;
  readonly options: IpcUnixSocketOptions;
  readonly #pool: Map<string, number>;
  readonly #opened: number[];
  /** Descriptors open after setup, and the highest of them. */
  readonly baseline: Set<number>;
  readonly maxBaseline: number;

  constructor(options: IpcUnixSocketOptions, kinds = FD_KINDS) {
    this.options = options;
    this.sock = new IpcUnixSocket(options);
    this.peer = this.sock.create();
    const { byKind, opened } = openKinds(kinds, this.sock, this.peer.fd);
    this.#pool = byKind;
    this.#opened = opened;
    this.baseline = openFds();
    this.maxBaseline = Math.max(...this.baseline);
  }

  fds(kinds: readonly string[]): number[] {
    return kinds.map((k) => this.#pool.get(k)!);
  }

  /**
   * Descriptors that differ from the baseline among the numbers the
   * receiver could have been given: the kernel hands out the lowest free
   * numbers, so `sent` new ones all fall at or below maxBaseline + sent.
   */
  fdDrift(sent: number): string[] {
    const out: string[] = [];
    const top = this.maxBaseline + sent + 2;
    for (let fd = 0; fd <= top; fd++) {
      const open = fcntl(fd, F.F_GETFD) >= 0;
      if (open !== this.baseline.has(fd)) {
        out.push(`fd ${fd} ${open ? "left open" : "closed behind our back"}`);
      }
    }
    return out;
  }

  [Symbol.dispose](): void {
    for (const fd of this.#opened) close(fd);
    this.peer.close();
    this.sock.close();
  }
}

let sendBuffers: MsgBuffers | undefined;

/** Sends `bytes` + `fds` as one record; returns sendmsg's result. */
function rawSend(peer: number, bytes: Uint8Array, fds: number[]): number {
  sendBuffers ??= new MsgBuffers(HEADER_SIZE + INLINE_MAX + 64 * 1024, 253);
  sendBuffers.data.set(bytes);
  return sendBuffers.sendmsg(
    peer,
    bytes.length,
    fds,
    MSG.MSG_DONTWAIT | MSG.MSG_NOSIGNAL,
  );
}

/** Options of {@linkcode fuzzFrames}. */
export interface FuzzFramesOptions {
  /** A known-good frame after every this many records. Default 64. */
  knownGoodEvery?: number;
  /**
   * Records per receiver configuration; every 4th takes at most 3 fds and
   * 4 KiB. Default 5000.
   */
  segment?: number;
  /**
   * Records per receiver: then the peer sends a few more, a known-good
   * frame, and hangs up. Default 500.
   */
  hangUpEvery?: number;
}

/** The receiver of segment `s`: every 4th takes 3 fds and 4 KiB. */
function segmentOptions(s: number): IpcUnixSocketOptions {
  return s % 4 === 3 ? { maxFds: 3, maxMessageSize: 4096 } : {};
}

/**
 * Writes `n` random and mutated records (bytes + descriptors) with a raw
 * peer into `IpcUnixSocket.receive()`. Each outcome must be a message or
 * an `IpcProtocolError`, with every descriptor that came either handed out
 * or closed. A known-good frame every `knownGoodEvery` records must arrive
 * intact.
 *
 * @param n Records to send (known-good ones not counted).
 * @param seed The seed; the same seed sends the same records.
 * @param options Cadence of known-good frames and receivers.
 * @returns The counts, and the failing inputs.
 */
export function fuzzFrames(
  n: number,
  seed: number,
  options: FuzzFramesOptions = {},
): FuzzCounts {
  const every = options.knownGoodEvery ?? 64;
  const segment = options.segment ?? 5000;
  const hangUpEvery = options.hangUpEvery ?? 500;
  const r = new Rng(seed);
  const counts: FuzzCounts = {
    inputs: 0,
    accepted: 0,
    rejectedByReason: {},
    failures: [],
    notSent: 0,
    knownGood: 0,
    hangUps: 0,
  };
  const before = fdSnapshot();
  const fail = (
    index: number,
    rec: { bytes: Uint8Array; fdKinds: string[]; notes: string[] },
    options: IpcUnixSocketOptions,
    what: string,
    hangUp = false,
  ) => {
    if (counts.failures.length >= MAX_SAVED_FAILURES) return;
    counts.failures.push({
      kind: "frame",
      seed,
      index,
      bytes: toBase64(rec.bytes),
      fdCount: rec.fdKinds.length,
      fdKinds: rec.fdKinds,
      options,
      ...(hangUp ? { hangUp } : {}),
      description: `${rec.notes.join("; ")}: ${what}`,
    });
  };

  // The peer's last records before it hangs up: each must still be read
  // (a value or a typed rejection), then a known-good frame, then the end
  // of the stream. An empty record without descriptors is left out: after a
  // hang-up it reads as the end of the stream (docs/wire.md).
  const hangUpBurst = (rig: FrameRig, index: number) => {
    const maxFds = rig.options.maxFds ?? 253;
    const maxSize = rig.options.maxMessageSize ?? 1 << 30;
    const recs: Record_[] = [];
    for (let k = 1 + r.int(3); k > 0; k--) {
      // Small records only: unread records count against the peer's send
      // buffer, and the known-good frame must still fit behind them.
      let rec = nextRecord(r, maxFds, maxSize);
      while (rec.bytes.length > 16384) rec = nextRecord(r, maxFds, maxSize);
      if (rec.bytes.length === 0 && rec.fdKinds.length === 0) {
        rec.bytes = Uint8Array.of(0);
      }
      recs.push(rec);
    }
    if (r.chance(0.5)) {
      recs.splice(r.int(recs.length + 1), 0, {
        bytes: new Uint8Array(0),
        fdKinds: Array.from({ length: 1 + r.int(3) }, () => r.pick(FD_KINDS)),
        notes: ["empty record with fds"],
        mustAccept: false,
      });
    }
    const sent = recs.filter((rec) =>
      rawSend(rig.peer.fd, rec.bytes, rig.fds(rec.fdKinds)) >= 0
    );
    counts.notSent! += recs.length - sent.length;
    const good = knownGood(r, index);
    const goodSent = rawSend(rig.peer.fd, good.bytes, rig.fds(good.fdKinds));
    rig.peer.close();
    counts.hangUps!++;
    for (const rec of sent) {
      rec.notes.push("then a known-good frame and hang-up");
      counts.inputs++;
      const out = receiveOne(rig.sock);
      if (!out.ok) return fail(index, rec, rig.options, out.error, true);
      if (out.accepted) counts.accepted++;
      else bump(counts.rejectedByReason, out.reason);
    }
    counts.inputs++;
    counts.knownGood!++;
    const out = goodSent < 0 ? null : receiveOne(rig.sock);
    if (!goodArrived(out, good)) {
      return fail(
        index,
        good,
        rig.options,
        `known-good frame before hang-up: ${describeOut(out)}`,
      );
    }
    counts.accepted++;
    const end = receiveEnd(rig.sock);
    if (end !== undefined) fail(index, good, rig.options, end);
  };

  let rig: FrameRig | undefined;
  try {
    for (let i = 0; i < n; i++) {
      if (i % hangUpEvery === 0) {
        if (rig) hangUpBurst(rig, i);
        rig?.[Symbol.dispose]();
        rig = new FrameRig(segmentOptions(Math.floor(i / segment)));
      }
      const { sock, peer } = rig!;
      const maxFds = rig!.options.maxFds ?? 253;
      const maxSize = rig!.options.maxMessageSize ?? 1 << 30;

      if (i % every === every - 1) {
        const good = knownGood(r, i);
        counts.inputs++;
        counts.knownGood!++;
        const sent = rawSend(peer.fd, good.bytes, rig!.fds(good.fdKinds));
        const out = sent < 0 ? null : receiveOne(sock);
        if (!goodArrived(out, good)) {
          fail(i, good, rig!.options, `known-good frame: ${describeOut(out)}`);
        } else counts.accepted++;
      }

      const rec = nextRecord(r, maxFds, maxSize);
      counts.inputs++;
      const fds = rig!.fds(rec.fdKinds);
      const sent = rawSend(peer.fd, rec.bytes, fds);
      if (sent < 0) {
        counts.notSent!++;
        if (rec.mustAccept) fail(i, rec, rig!.options, `sendmsg ${sent}`);
        continue;
      }
      const out = receiveOne(sock);
      if (!out.ok) {
        fail(i, rec, rig!.options, out.error);
      } else if (out.accepted) {
        counts.accepted++;
      } else {
        bump(counts.rejectedByReason, out.reason);
        if (rec.mustAccept) {
          fail(i, rec, rig!.options, `valid frame rejected: ${out.reason}`);
        }
      }
      if (fds.length > 0) {
        const drift = rig!.fdDrift(fds.length);
        if (drift.length > 0) {
          fail(i, rec, rig!.options, `descriptors: ${drift.join(", ")}`);
          // Start over with a fresh receiver so one leak is reported once.
          for (const d of drift) {
            const fd = Number(d.split(" ")[1]);
            if (d.endsWith("left open")) close(fd);
          }
          rig![Symbol.dispose]();
          rig = new FrameRig(rig!.options);
        }
      }
    }
    if (rig) hangUpBurst(rig, n);
  } finally {
    rig?.[Symbol.dispose]();
  }
  const leaked = leakedSince(before);
  if (leaked.length > 0) {
    counts.failures.push({
      kind: "frame",
      seed,
      index: n,
      bytes: "",
      fdCount: 0,
      description: `descriptors leaked by the run: ${leaked.join(", ")}`,
    });
  }
  return counts;
}

function goodArrived(
  out: Outcome | null,
  good: { nfds: number; data: Uint8Array },
): boolean {
  return out !== null && out.ok && out.accepted && out.nfds === good.nfds &&
    sameBytes(out.data, good.data);
}

/** undefined if the next receive reports the end of the stream. */
function receiveEnd(sock: IpcUnixSocket): string | undefined {
  try {
    sock.receive({ timeout: 1000 }).fds.forEach((fd) => fd.close());
    return "a message after the known-good frame and hang-up";
  } catch (e) {
    if (e instanceof IpcClosedError) return undefined;
    return `end of stream expected: ${errorText(e)}`;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describeOut(out: Outcome | null): string {
  if (out === null) return "not sent";
  if (!out.ok) return out.error;
  if (!out.accepted) return `rejected (${out.reason})`;
  return `accepted ${out.data.length} bytes and ${out.nfds} fds`;
}

/** A valid frame whose content the receiver must get back exactly. */
function knownGood(r: Rng, i: number) {
  const nfds = r.int(3);
  const fdKinds = Array.from({ length: nfds }, () => r.pick(PLAIN_KINDS));
  if (r.chance(0.1)) { // through the sealed memfd holding pattern(4096, 4096)
    fdKinds.push("memfd-sealed-4096");
    return {
      bytes: header(4096, nfds, FLAG_MEMFD),
      fdKinds,
      nfds,
      data: pattern(4096, 4096),
      notes: [`known-good memfd frame ${i}`],
    };
  }
  const data = pattern(r.int(300), i + 1);
  return {
    bytes: concat(header(data.length, nfds, 0), data),
    fdKinds,
    nfds,
    data,
    notes: [`known-good frame ${i}`],
  };
}

// ---------------------------------------------------------------------------
// IPA values

const Point = T.struct({ x: T.i16, y: T.u16, on: T.bool });

/**
 * The types the IPA fuzzer decodes, by name: every method and event of
 * the camera and test interfaces, and a few richer ones.
 */
export const IPA_TYPES: ReadonlyMap<string, IpaType> = (() => {
  const m = new Map<string, IpaType>();
  const add = (iface: IpaInterface) => {
    for (const [name, def] of Object.entries(iface.methods)) {
      m.set(`${iface.name}.${name}.params`, def.params);
      if (def.result) m.set(`${iface.name}.${name}.result`, def.result);
    }
    for (const [name, type] of Object.entries(iface.events)) {
      m.set(`${iface.name}.event.${name}`, type);
    }
  };
  add(CameraIpa);
  add(TestIpa);
  m.set(
    "fuzz.rich",
    T.struct({
      id: T.u32,
      flag: T.optional(T.bool),
      name: T.string,
      blob: T.bytes,
      gains: T.array(T.f32),
      when: T.i64,
      big: T.u64,
      ratio: T.f64,
      tiny: T.i8,
      regions: T.map(T.string, Point),
      grid: T.array(T.array(T.optional(T.u8))),
      controls: T.controls,
      buf: T.fd,
      extra: T.optional(T.struct({
        fds: T.array(T.fd),
        meta: T.map(T.u32, T.optional(T.string)),
      })),
    }),
  );
  m.set(
    "fuzz.maps",
    T.map(T.u64, T.array(T.struct({ a: T.fd, b: T.optional(T.controls) }))),
  );
  m.set(
    "fuzz.keys",
    T.struct({ f: T.map(T.f64, T.string), b: T.map(T.bool, T.i32) }),
  );
  m.set("fuzz.empty", T.array(T.struct({})));
  let deep: IpaType = T.array(T.struct({ v: T.i32, s: T.optional(T.fd) }));
  for (let i = 0; i < 12; i++) deep = T.optional(deep);
  m.set("fuzz.deep", deep);
  return m;
})();

const STRINGS = ["", "a", "é", "∑", "😀", "a\u0000b", "\uFEFFbom", "IMX219"];

function randomString(r: Rng): string {
  if (r.chance(0.5)) return r.pick(STRINGS);
  let s = "";
  const n = r.int(12);
  for (let i = 0; i < n; i++) {
    s += r.pick(STRINGS) + String.fromCharCode(32 + r.int(90));
  }
  return s;
}

function randomF64(r: Rng): number {
  return r.pick([0, -0, 1.5, -2, NaN, Infinity, -Infinity, 1e300, r.next()]);
}

function randomControls(r: Rng): Map<number, unknown> {
  const m = new Map<number, unknown>();
  const n = r.int(5);
  for (let i = 0; i < n; i++) {
    const id = r.chance(0.5) ? 1 + r.int(8) : r.int(0x1_0000_0000);
    switch (r.int(5)) {
      case 0:
        m.set(id, r.chance(0.5));
        break;
      case 1:
        m.set(id, randomF64(r));
        break;
      case 2:
        m.set(
          id,
          BigInt.asIntN(64, BigInt(r.int(2 ** 32)) << BigInt(r.int(33))),
        );
        break;
      case 3:
        m.set(id, randomString(r));
        break;
      default:
        m.set(id, Array.from({ length: r.int(4) }, () => randomF64(r)));
    }
  }
  return m;
}

/** A random value of `type`; `fd` fields take descriptors from `fds`. */
function randomValue(
  r: Rng,
  type: IpaType,
  fds: readonly OwnedFd[],
  depth = 0,
): unknown {
  switch (type.kind) {
    case "bool":
      return r.chance(0.5);
    case "u8":
      return r.int(256);
    case "i8":
      return r.int(256) - 128;
    case "u16":
      return r.int(65536);
    case "i16":
      return r.int(65536) - 32768;
    case "u32":
      return r.chance(0.3) ? r.pick([0, 1, 0xffffffff]) : r.int(2 ** 32);
    case "i32":
      return r.int(2 ** 32) - 2 ** 31;
    case "u64":
      return (BigInt(r.int(2 ** 32)) << 32n) | BigInt(r.int(2 ** 32));
    case "i64":
      return BigInt.asIntN(
        64,
        (BigInt(r.int(2 ** 32)) << 32n) | BigInt(r.int(2 ** 32)),
      );
    case "f32":
      return Math.fround(randomF64(r));
    case "f64":
      return randomF64(r);
    case "string":
      return randomString(r);
    case "bytes":
      return r.bytes(r.chance(0.1) ? r.int(300) : r.int(8));
    case "fd":
      return r.pick(fds);
    case "controls":
      return randomControls(r);
    case "optional":
      return r.chance(0.3) ? undefined : randomValue(r, type.inner, fds, depth);
    case "array": {
      const n = depth > 3 ? r.int(2) : r.int(5);
      return Array.from(
        { length: n },
        () => randomValue(r, type.items, fds, depth + 1),
      );
    }
    case "map": {
      const m = new Map<unknown, unknown>();
      const n = depth > 3 ? r.int(2) : r.int(5);
      for (let i = 0; i < n; i++) {
        m.set(
          randomValue(r, type.key, fds, depth + 1),
          randomValue(r, type.value, fds, depth + 1),
        );
      }
      return m;
    }
    case "struct": {
      const out: Record<string, unknown> = {};
      for (const [name, t] of Object.entries(type.fields)) {
        const v = randomValue(r, t, fds, depth + 1);
        if (v !== undefined) out[name] = v;
      }
      return out;
    }
  }
}

/** An encoding in the corpus: bytes, and which source each fd is. */
interface Encoded {
  data: Uint8Array;
  fdSources: number[];
}

/** Closes every OwnedFd in a decoded value; returns how many. */
function disposeValue(v: unknown, seen = new Set<unknown>()): number {
  if (v === null || typeof v !== "object" || seen.has(v)) return 0;
  seen.add(v);
  if (v instanceof OwnedFd) {
    v.close();
    return 1;
  }
  if (v instanceof Uint8Array) return 0;
  let n = 0;
  if (v instanceof Map) {
    for (const [k, x] of v) n += disposeValue(k, seen) + disposeValue(x, seen);
  } else if (Array.isArray(v)) {
    for (const x of v) n += disposeValue(x, seen);
  } else {
    for (const x of Object.values(v)) n += disposeValue(x, seen);
  }
  return n;
}

const INTERESTING_U32 = [
  0,
  1,
  2,
  0x7f,
  0x80,
  0xff,
  0xffff,
  0x10000,
  0x7fffffff,
  0xffffffff,
];

/** One mutation of the bytes or the descriptor list; returns its note. */
function mutateIpa(
  r: Rng,
  cur: { data: Uint8Array; fdSources: number[] },
  other: () => Encoded,
  sources: number,
): string {
  const b = cur.data;
  switch (r.int(12)) {
    case 0: {
      if (b.length === 0) return "flip (empty)";
      const at = r.int(b.length);
      b[at] ^= 1 << r.int(8);
      return `bit flip at ${at}`;
    }
    case 1: {
      if (b.length === 0) return "byte (empty)";
      const at = r.int(b.length);
      b[at] = r.pick([0, 1, 2, 0x7f, 0x80, 0xff, r.int(256)]);
      return `byte ${at} = ${b[at]}`;
    }
    case 2: {
      const n = r.int(b.length + 1);
      cur.data = b.slice(0, n);
      return `truncated to ${n}`;
    }
    case 3: {
      const at = r.int(b.length + 1);
      const extra = r.bytes(1 + r.int(8));
      cur.data = concat(b.subarray(0, at), extra, b.subarray(at));
      return `${extra.length} bytes inserted at ${at}`;
    }
    case 4: {
      const at = r.int(b.length + 1);
      const n = 1 + r.int(8);
      cur.data = concat(b.subarray(0, at), b.subarray(at + n));
      return `${n} bytes deleted at ${at}`;
    }
    case 5: {
      if (b.length < 4) return "u32 (short)";
      const at = r.int(b.length - 3);
      const v = r.pick(INTERESTING_U32);
      setU32(b, at, v);
      return `u32 ${v} at ${at}`;
    }
    case 6: { // splice: a prefix of this one, a suffix of another
      const o = other();
      const at = r.int(b.length + 1);
      const from = r.int(o.data.length + 1);
      cur.data = concat(b.subarray(0, at), o.data.subarray(from));
      cur.fdSources = [
        ...cur.fdSources.slice(0, r.int(cur.fdSources.length + 1)),
        ...o.fdSources.slice(r.int(o.fdSources.length + 1)),
      ];
      return `spliced at ${at} with another from ${from}`;
    }
    case 7: { // repeat a chunk
      const at = r.int(b.length + 1);
      const n = r.int(16);
      cur.data = concat(b.subarray(0, at + n), b.subarray(at));
      return `${n} bytes at ${at} repeated`;
    }
    case 8:
      if (cur.fdSources.length === 0) return "drop fd (none)";
      cur.fdSources.splice(r.int(cur.fdSources.length), 1);
      return "fd dropped";
    case 9:
      cur.fdSources.splice(r.int(cur.fdSources.length + 1), 0, r.int(sources));
      return "fd added";
    case 10: {
      const f = cur.fdSources;
      if (f.length < 2) return "swap fds (too few)";
      const i = r.int(f.length);
      const j = r.int(f.length);
      [f[i], f[j]] = [f[j], f[i]];
      return `fds ${i} and ${j} swapped`;
    }
    default: {
      const f = cur.fdSources;
      if (f.length === 0) return "dup fd (none)";
      f.push(f[r.int(f.length)]);
      return "fd dup of the same memfd added";
    }
  }
}

/** Options of {@linkcode fuzzIpaDecode}. */
export interface FuzzIpaOptions {
  /** Encodings per type kept to mutate. Default 12. */
  corpus?: number;
}

/**
 * Encodes random values of several IPA types, mutates the bytes and the
 * descriptor list, and decodes them with `decodeIpa()`. Each outcome must
 * be a value (every descriptor in it) or an `IpaDecodeError` (every
 * descriptor closed).
 *
 * @param n Inputs to decode.
 * @param seed The seed; the same seed decodes the same inputs.
 * @param options Corpus size.
 * @returns The counts, and the failing inputs.
 */
export function fuzzIpaDecode(
  n: number,
  seed: number,
  options: FuzzIpaOptions = {},
): FuzzCounts {
  const r = new Rng(seed);
  const counts: FuzzCounts = {
    inputs: 0,
    accepted: 0,
    rejectedByReason: {},
    failures: [],
  };
  const before = fdSnapshot();
  const sources = Array.from(
    { length: 4 },
    (_, i) => createMemfd({ name: `fuzz-ipa-${i}`, data: pattern(16, i + 1) }),
  );
  try {
    const names = [...IPA_TYPES.keys()];
    const weighted = [
      ...names,
      ...names.filter((x) => x.startsWith("fuzz.")).flatMap((x) => [x, x, x]),
      "camera.queueRequest.params",
      "camera.mapBuffers.params",
    ];
    const corpus = new Map<string, Encoded[]>();
    for (const name of names) {
      const type = IPA_TYPES.get(name)!;
      const list: Encoded[] = [];
      for (let i = 0; i < (options.corpus ?? 12); i++) {
        const enc = encodeIpa(type, randomValue(r, type, sources));
        list.push({
          data: enc.data,
          fdSources: enc.fds.map((fd) => sources.indexOf(fd as OwnedFd)),
        });
      }
      corpus.set(name, list);
    }

    for (let i = 0; i < n; i++) {
      const name = r.pick(weighted);
      const type = IPA_TYPES.get(name)!;
      const base = r.pick(corpus.get(name)!);
      const cur = {
        data: base.data.slice(),
        fdSources: base.fdSources.slice(),
      };
      const notes: string[] = [];
      const mutations = r.chance(0.05) ? 0 : 1 + r.int(4);
      const other = () =>
        r.chance(0.8)
          ? r.pick(corpus.get(name)!)
          : r.pick(corpus.get(r.pick(names))!);
      for (let m = 0; m < mutations; m++) {
        notes.push(mutateIpa(r, cur, other, sources.length));
      }
      counts.inputs++;
      const fds = cur.fdSources.map((s) => sources[s].dup());
      const numbers = fds.map((fd) => fd.fd);
      const { problem, reason } = decodeOne(type, cur.data, fds, counts);
      const stillOpen = numbers.filter((fd, k) =>
        fds[k].isValid || fcntl(fd, F.F_GETFD) >= 0
      );
      let what = problem;
      if (stillOpen.length > 0) {
        what = `${what ?? "decoded"}; fds ${stillOpen} still open`;
        for (const fd of fds) fd.close();
      }
      if (what === undefined && mutations === 0 && reason !== undefined) {
        what = `unmutated encoding rejected: ${reason}`;
      }
      if (what !== undefined && counts.failures.length < MAX_SAVED_FAILURES) {
        counts.failures.push({
          kind: "ipa",
          seed,
          index: i,
          bytes: toBase64(cur.data),
          fdCount: fds.length,
          ipaType: name,
          description: `${name}, ${notes.join("; ") || "unmutated"}: ${what}`,
        });
      }
    }
  } finally {
    for (const fd of sources) fd.close();
  }
  const leaked = leakedSince(before);
  if (leaked.length > 0) {
    counts.failures.push({
      kind: "ipa",
      seed,
      index: n,
      bytes: "",
      fdCount: 0,
      description: `descriptors leaked by the run: ${leaked.join(", ")}`,
    });
  }
  return counts;
}

/**
 * Decodes one input and counts the outcome. Returns undefined when it was
 * a value or an IpaDecodeError, else what went wrong. Every descriptor of
 * a decoded value is closed.
 */
function decodeOne(
  type: IpaType,
  data: Uint8Array,
  fds: OwnedFd[],
  counts: FuzzCounts,
): { problem?: string; reason?: string } {
  let value: unknown;
  try {
    value = decodeIpa(type, data, fds, "params");
  } catch (e) {
    if (e instanceof IpaDecodeError) {
      bump(counts.rejectedByReason, e.reason);
      return { reason: e.reason };
    }
    return { problem: errorText(e) };
  }
  counts.accepted++;
  const owned = disposeValue(value);
  if (owned !== fds.length) {
    return {
      problem: `decoded value holds ${owned} descriptors, ${fds.length} came`,
    };
  }
  return {};
}

// ---------------------------------------------------------------------------
// Saved cases

/**
 * Writes each case as a JSON file into `dir` (created if missing), named
 * `<kind>-<seed>-<index>.json`.
 *
 * @returns The paths written.
 */
export function saveCases(
  cases: readonly SavedCase[],
  dir: string | URL = new URL("../regressions/", import.meta.url),
): string[] {
  const base = typeof dir === "string" ? dir : fromFileUrl(dir);
  Deno.mkdirSync(base, { recursive: true });
  const paths: string[] = [];
  for (const c of cases) {
    const path = `${
      base.replace(/\/$/, "")
    }/${c.kind}-${c.seed}-${c.index}.json`;
    Deno.writeTextFileSync(path, JSON.stringify(c, null, 2) + "\n");
    paths.push(path);
  }
  return paths;
}

/** What a replayed case did: a value or a typed rejection, or a failure. */
export interface ReplayResult {
  /** Whether the outcome is a value / message or the typed error. */
  ok: boolean;
  /** `accepted`, the rejection reason, or what went wrong. */
  outcome: string;
}

/**
 * Replays one saved case through the same check as the fuzzer that found
 * it, with fresh descriptors of the recorded kinds (frame) or fresh memfds
 * (ipa).
 */
export function replayCase(c: SavedCase): ReplayResult {
  return c.kind === "frame" ? replayFrame(c) : replayIpa(c);
}

function replayFrame(c: SavedCase): ReplayResult {
  const bytes = fromBase64(c.bytes);
  const kinds = c.fdKinds ??
    Array.from({ length: c.fdCount }, () => "memfd");
  using rig = new FrameRig(c.options ?? {}, kinds);
  const fds = rig.fds(kinds);
  const sent = rawSend(rig.peer.fd, bytes, fds);
  if (sent < 0) return { ok: true, outcome: `not sent (${sent})` };
  if (c.hangUp) {
    const good = knownGood(new Rng(c.seed), c.index);
    const goodSent = rawSend(rig.peer.fd, good.bytes, rig.fds(good.fdKinds));
    rig.peer.close();
    const out = receiveOne(rig.sock);
    if (!out.ok) return { ok: false, outcome: out.error };
    const next = goodSent < 0 ? null : receiveOne(rig.sock);
    if (!goodArrived(next, good)) {
      return { ok: false, outcome: `known-good frame: ${describeOut(next)}` };
    }
    const end = receiveEnd(rig.sock);
    if (end !== undefined) return { ok: false, outcome: end };
    return { ok: true, outcome: out.accepted ? "accepted" : out.reason };
  }
  const out = receiveOne(rig.sock);
  const drift = rig.fdDrift(fds.length);
  if (drift.length > 0) {
    return { ok: false, outcome: `descriptors: ${drift.join(", ")}` };
  }
  if (!out.ok) return { ok: false, outcome: out.error };
  return { ok: true, outcome: out.accepted ? "accepted" : out.reason };
}

function replayIpa(c: SavedCase): ReplayResult {
  const type = IPA_TYPES.get(c.ipaType ?? "");
  if (type === undefined) {
    return { ok: false, outcome: `unknown IPA type ${c.ipaType}` };
  }
  using src = createMemfd({ data: pattern(16) });
  const fds = Array.from({ length: c.fdCount }, () => src.dup());
  const numbers = fds.map((fd) => fd.fd);
  const counts: FuzzCounts = {
    inputs: 0,
    accepted: 0,
    rejectedByReason: {},
    failures: [],
  };
  const { problem, reason } = decodeOne(
    type,
    fromBase64(c.bytes),
    fds,
    counts,
  );
  const open = numbers.filter((fd, k) =>
    fds[k].isValid || fcntl(fd, F.F_GETFD) >= 0
  );
  for (const fd of fds) fd.close();
  if (problem !== undefined) return { ok: false, outcome: problem };
  if (open.length > 0) {
    return { ok: false, outcome: `fds ${open} still open` };
  }
  return {
    ok: true,
    outcome: reason ?? "accepted",
  };
}

/** The counts as printable lines (for the stress log and reliability.md). */
export function formatCounts(title: string, c: FuzzCounts, ms: number): string {
  const lines = [
    `${title}: ${c.inputs} inputs in ${(ms / 1000).toFixed(1)} s`,
    `  accepted: ${c.accepted}`,
  ];
  if (c.knownGood !== undefined) {
    lines.push(`  known-good frames intact: ${c.knownGood}`);
  }
  if (c.hangUps !== undefined) {
    lines.push(`  peer hang-ups checked to the end: ${c.hangUps}`);
  }
  if (c.notSent !== undefined) lines.push(`  refused by sendmsg: ${c.notSent}`);
  const reasons = Object.entries(c.rejectedByReason).sort((a, b) =>
    b[1] - a[1]
  );
  for (const [reason, k] of reasons) lines.push(`  rejected ${reason}: ${k}`);
  lines.push(`  failures: ${c.failures.length}`);
  return lines.join("\n");
}
