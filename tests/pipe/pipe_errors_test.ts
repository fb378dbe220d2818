import { assertEquals, assertInstanceOf } from "@std/assert";
import {
  describeExit,
  IpcCallError,
  IpcClosedError,
  IpcPeerGoneError,
  IpcRemoteError,
} from "../../mod.ts";
import {
  decodeErrorReply,
  encodeErrorReply,
} from "../../src/pipe/ipc_call_error.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("`describeExit()` names the code or signal, and the stderr line that names the error", () => {
  assertEquals(describeExit(null), "exit status not known yet");
  assertEquals(describeExit({ kind: "exited", code: 2 }), "exited with code 2");
  assertEquals(
    describeExit({
      kind: "signaled",
      signal: "SIGSEGV",
      signalNumber: 11,
      coreDumped: true,
      stderr: enc("\x1b[31merror\x1b[0m: Uncaught boom\n    at x\n"),
    }),
    "killed by SIGSEGV (core dumped); stderr: error: Uncaught boom",
  );
  assertEquals(
    describeExit({ kind: "exited", code: 1, stderr: enc("a\nb\nc\nd\n") }),
    "exited with code 1; stderr: b | c | d",
  );
});

Deno.test("`IpcPeerGoneError` is an IpcClosedError that carries the report", () => {
  const e = new IpcPeerGoneError("Cannot send 3", null);
  assertInstanceOf(e, IpcClosedError);
  assertEquals(e.exit, null);
  assertEquals(
    e.message,
    "Cannot send 3: the worker is gone (exit status not known yet)",
  );
});

Deno.test("`IpcRemoteError` keeps the call's cmd, the code and the worker's text apart", () => {
  const plain = new IpcRemoteError(5, 0, "bad input");
  assertEquals(plain.message, "Call 5 failed in the worker: bad input");
  const coded = new IpcRemoteError(5, 8, "bad input");
  assertEquals([coded.cmd, coded.code, coded.remoteMessage], [
    5,
    8,
    "bad input",
  ]);
  assertEquals(
    coded.message,
    "Call 5 failed in the worker: bad input (code 8)",
  );
});

Deno.test("error replies carry { u32 code, UTF-8 text }; a short one decodes as code 0", () => {
  const coded = encodeErrorReply(new IpcCallError(0x01020304, "é"));
  assertEquals([...coded], [4, 3, 2, 1, 0xc3, 0xa9]);
  assertEquals(decodeErrorReply(coded), { code: 0x01020304, text: "é" });
  assertEquals(decodeErrorReply(encodeErrorReply(new TypeError("t"))), {
    code: 0,
    text: "t",
  });
  assertEquals(decodeErrorReply(encodeErrorReply("not an Error")), {
    code: 0,
    text: "not an Error",
  });
  assertEquals(decodeErrorReply(enc("ab")), { code: 0, text: "ab" });
});
