import { fromFileUrl } from "@std/path";
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  createMemfd,
  OwnedFd,
  Process,
  ProcessExitEvent,
  ProcessIsolationError,
  ProcessSpawnError,
  readFd,
  STDERR_TAIL_BYTES,
  SyscallError,
} from "../../mod.ts";
import { access } from "../../ffi/spawn.ts";
import { memfdCreate, MFD, readlink } from "../../ffi/unistd.ts";
import { watchedCount } from "../../src/process/_pidfd_watcher.ts";
import { ISOLATION_LAYERS } from "../../src/process/isolation.ts";
import { clone3Available } from "../../ffi/clone3_trampoline.ts";
import {
  openFds,
  procExists,
  procState,
  readProc,
  test,
  USERNS,
  within,
  withoutFdLeak,
} from "../_helpers.ts";

const dec = new TextDecoder();
const PATHS = ["clone3", "posix_spawn"] as const;
const HAS_BASH = access("/bin/bash", 1) === 0;

function sh(script: string, opts: Parameters<typeof Process.spawn>[1] = {}) {
  return Process.spawn("/bin/sh", { ...opts, args: ["-c", script] });
}

async function waitExit(p: Process, ms = 5000) {
  return await within(p.exited, ms, `exit of pid ${p.pid}`);
}

Deno.test("`Process.exited` reports exit code 42 when the child exits with it", async () => {
  await withoutFdLeak(async () => {
    for (const spawnPath of PATHS) {
      const p = sh("exit 42", { spawnPath });
      assertEquals(await waitExit(p), { kind: "exited", code: 42 });
      assertEquals(p.exitStatus, { kind: "exited", code: 42 });
      assertEquals(p.running, false);
      assert(!procExists(p.pid!), `pid ${p.pid} not reaped (${spawnPath})`);
    }
  });
});

Deno.test("`Process.start()` reports which spawn path was taken", async () => {
  await withoutFdLeak(async () => {
    await using a = Process.spawn("/bin/true");
    assertEquals(
      a.describe().spawnPath,
      clone3Available() ? "clone3" : "posix_spawn",
    );
    await using b = Process.spawn("/bin/true", { spawnPath: "posix_spawn" });
    assert(["posix_spawn", "pidfd_spawn"].includes(b.describe().spawnPath));
    await waitExit(a);
    await waitExit(b);
  });
});

const SIGNALS = [
  ["SIGHUP", 1],
  ["SIGINT", 2],
  ["SIGQUIT", 3],
  ["SIGILL", 4],
  ["SIGTRAP", 5],
  ["SIGABRT", 6],
  ["SIGBUS", 7],
  ["SIGFPE", 8],
  ["SIGKILL", 9],
  ["SIGUSR1", 10],
  ["SIGSEGV", 11],
  ["SIGUSR2", 12],
  ["SIGPIPE", 13],
  ["SIGALRM", 14],
  ["SIGTERM", 15],
  ["SIGXCPU", 24],
  ["SIGXFSZ", 25],
  ["SIGSYS", 31],
] as const;

Deno.test("`Process.exited` names the signal when the child dies by each common signal", async () => {
  await withoutFdLeak(async () => {
    for (const spawnPath of PATHS) {
      const procs = SIGNALS.map(([name]) =>
        sh(`ulimit -c 0; kill -s ${name.slice(3)} $$; sleep 5`, { spawnPath })
      );
      const got = await Promise.all(procs.map((p) => waitExit(p)));
      SIGNALS.forEach(([name, num], i) => {
        assertEquals(got[i], {
          kind: "signaled",
          signal: name,
          signalNumber: num,
          coreDumped: false,
        }, `${name} via ${spawnPath}`);
      });
    }
  });
});

Deno.test("`Process.kill()` delivers the named signal when the child runs", async () => {
  await withoutFdLeak(async () => {
    const p = Process.spawn("/bin/sleep", { args: ["10"] });
    p.kill("SIGUSR2");
    const s = await waitExit(p);
    assertEquals(s.kind === "signaled" && s.signal, "SIGUSR2");
    p.kill(); // after exit: a no-op
    p.kill("SIGTERM");
  });
});

/** Lists the child's descriptors with `ls -l /proc/self/fd/`. */
async function childFds(
  opts: Parameters<typeof Process.spawn>[1],
): Promise<Map<number, string>> {
  using out = createMemfd({ name: "isola-out" });
  const p = Process.spawn("/bin/ls", {
    ...opts,
    args: ["-l", "/proc/self/fd/"],
    stdout: out,
  });
  assertEquals(await waitExit(p), { kind: "exited", code: 0 });
  const fds = new Map<number, string>();
  for (const line of dec.decode(readFd(out)).split("\n")) {
    const m = line.match(/ (\d+) -> (.*)$/);
    // ls's own handle on the directory it lists is not ours.
    if (m && !/^\/proc\/\d+\/fd$/.test(m[2])) fds.set(Number(m[1]), m[2]);
  }
  return fds;
}

Deno.test("`Process.start()` keeps the chosen fds at their numbers and closes every other one", async () => {
  await withoutFdLeak(async () => {
    for (const spawnPath of PATHS) {
      using a = createMemfd({ name: "keep-a" });
      // Not close-on-exec: only close_range / closefrom can stop it.
      using stray = new OwnedFd(memfdCreate("stray", 0));
      using b = createMemfd({ name: "keep-b" });
      const fds = await childFds({ keepFds: [a, b.fd], spawnPath });
      assertEquals(
        [...fds.keys()].sort((x, y) => x - y),
        [0, 1, 2, a.fd, b.fd].sort((x, y) => x - y),
        `${spawnPath}: ${JSON.stringify([...fds])}`,
      );
      assertEquals(fds.get(0), "/dev/null");
      assertMatch(fds.get(1)!, /^\/memfd:isola-out/);
      assertEquals(fds.get(2), "/dev/null");
      assertMatch(fds.get(a.fd)!, /^\/memfd:keep-a/);
      assertMatch(fds.get(b.fd)!, /^\/memfd:keep-b/);
      assert(stray.isValid);
    }
  });
});

Deno.test("`Process.start()` connects stdin and stdout when given descriptors", async () => {
  await withoutFdLeak(async () => {
    for (const spawnPath of PATHS) {
      using input = createMemfd({ data: new TextEncoder().encode("frame\n") });
      using out = createMemfd();
      const p = Process.spawn("/bin/cat", {
        stdin: input,
        stdout: out,
        spawnPath,
      });
      assertEquals(await waitExit(p), { kind: "exited", code: 0 });
      assertEquals(dec.decode(readFd(out)), "frame\n");
    }
  });
});

Deno.test("`Process.start()` passes env, ISOLA_LOG_FILE and cwd when given", async () => {
  await withoutFdLeak(async () => {
    for (const spawnPath of PATHS) {
      using out = createMemfd();
      const p = sh('printf "%s:%s:%s" "$ISOLA_LOG_FILE" "$FOO" "$(pwd)"', {
        env: { FOO: "bar" },
        logFile: "/tmp/isola-child.log",
        cwd: "/tmp",
        stdout: out,
        spawnPath,
      });
      assertEquals(await waitExit(p), { kind: "exited", code: 0 });
      assertEquals(dec.decode(readFd(out)), "/tmp/isola-child.log:bar:/tmp");

      using out2 = createMemfd();
      const q = Process.spawn("/usr/bin/env", {
        clearEnv: true,
        env: { ONLY: "1" },
        stdout: out2,
        spawnPath,
      });
      await waitExit(q);
      assertEquals(dec.decode(readFd(out2)), "ONLY=1\n");
    }
  });
});

Deno.test("`Process.start()` searches PATH when the program has no slash", async () => {
  await withoutFdLeak(async () => {
    const p = Process.spawn("true");
    assertEquals(await waitExit(p), { kind: "exited", code: 0 });
    assertMatch(p.describe().path, /\/true$/);
  });
});

test.userns("`Process.start()` puts the child in every namespace and reports each layer when isolated", async () => {
  if (!clone3Available()) return;
  await withoutFdLeak(async () => {
    await using p = Process.spawn("/bin/sleep", {
      args: ["10"],
      isolate: true,
    });
    for (const ns of ["user", "net", "pid", "ipc", "uts", "cgroup", "mnt"]) {
      const mine = readlink(`/proc/self/ns/${ns}`);
      const its = readlink(`/proc/${p.pid}/ns/${ns}`);
      assertEquals(typeof mine, "string");
      assertEquals(typeof its, "string");
      assertNotEquals(its, mine, `${ns} namespace shared`);
    }
    const want = Object.fromEntries(
      ISOLATION_LAYERS.map((l) => [l, l !== "cgroupLimits"]),
    );
    // Landlock where the kernel has it (5.13+); said why otherwise.
    const d = p.describe();
    if (!d.isolation.landlock) {
      want.landlock = false;
      assert(d.notApplied.some((n) => n.startsWith("landlock: ")));
    }
    assertEquals(d.isolation, want);
    // cgroup v2 limits: never here (v1 hybrid), and said so.
    assertEquals(
      d.notApplied.filter((n) => !n.startsWith("landlock: ")).map((n) =>
        n.split(":")[0]
      ),
      ["cgroupLimits"],
    );
    const status = readProc(`/proc/${p.pid}/status`)!;
    assertMatch(status, /^Seccomp:\s+2$/m);
    assertMatch(readProc(`/proc/${p.pid}/status`)!, /NoNewPrivs:\s+1/);
    p.kill();
    await waitExit(p);
  });
});

Deno.test({
  name:
    "`Process.start()` leaves the child unable to reach a parent's 127.0.0.1 listener when isolated",
  ignore: !HAS_BASH || !clone3Available() || !USERNS,
  fn: async () => {
    await withoutFdLeak(async () => {
      using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = listener.addr.port;
      const script = `echo hi > /dev/tcp/127.0.0.1/${port}`;
      // Control: without isolation the same command connects.
      const open = Process.spawn("/bin/bash", { args: ["-c", script] });
      assertEquals(await waitExit(open), { kind: "exited", code: 0 });
      const isolated = Process.spawn("/bin/bash", {
        args: ["-c", script],
        isolate: true,
        stderr: "capture",
      });
      const s = await waitExit(isolated);
      assertEquals(s.kind, "exited");
      assertNotEquals((s as { code: number }).code, 0);
      assertMatch(dec.decode(s.stderr), /unreachable|refused/i);
    });
  },
});

test.userns("`Process` isolation kills an orphaned child when its parent dies", async () => {
  if (!clone3Available()) return;
  await withoutFdLeak(async () => {
    using out = createMemfd();
    const fixture = fromFileUrl(
      new URL("../fixtures/process_pdeathsig.ts", import.meta.url),
    );
    await using parent = Process.spawn(Deno.execPath(), {
      args: ["run", "--no-lock", "--allow-ffi", "--allow-read", fixture],
      stdout: out,
      stderr: "capture",
    });
    // The fixture prints its isolated grandchild's pid once started.
    let grandchild = 0;
    const deadline = performance.now() + 15_000;
    while (grandchild === 0) {
      assert(performance.now() < deadline, "fixture did not report a pid");
      assert(parent.running, "fixture died early");
      const m = dec.decode(readFd(out)).match(/^(\d+)\n/);
      if (m) grandchild = Number(m[1]);
      else await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(procState(grandchild), "S");
    parent.kill("SIGKILL");
    const s = await waitExit(parent);
    assertEquals(s.kind === "signaled" && s.signal, "SIGKILL");
    // Gone, or a zombie waiting for init: either way no longer running.
    const gone = performance.now() + 1000;
    let state = procState(grandchild);
    while (state !== null && state !== "Z" && performance.now() < gone) {
      await new Promise((r) => setTimeout(r, 10));
      state = procState(grandchild);
    }
    assert(state === null || state === "Z", `grandchild still ${state}`);
  });
});

Deno.test("`Process.exited` carries the stderr tail when a crashing child's stderr is captured", async () => {
  await withoutFdLeak(async () => {
    for (const spawnPath of PATHS) {
      const p = sh("echo boom >&2; ulimit -c 0; kill -s SEGV $$", {
        stderr: "capture",
        spawnPath,
      });
      const s = await waitExit(p);
      assertEquals(s.kind === "signaled" && s.signal, "SIGSEGV");
      assertEquals(dec.decode(s.stderr), "boom\n");
    }
    // More than 64 KiB: only the last 64 KiB are kept.
    const big = sh(
      "head -c 200000 /dev/zero | tr '\\0' a >&2; echo END >&2; exit 3",
      { stderr: "capture" },
    );
    const s = await waitExit(big);
    assertEquals(s.kind === "exited" && s.code, 3);
    assertEquals(s.stderr!.length, STDERR_TAIL_BYTES);
    const text = dec.decode(s.stderr);
    assert(text.endsWith("aaaaEND\n"), text.slice(-20));
    // Without capture there is no stderr field.
    assertEquals(await waitExit(sh("exit 0")), { kind: "exited", code: 0 });
  });
});

Deno.test("`Process.exited` does not wait for a grandchild that keeps the stderr pipe open", async () => {
  await withoutFdLeak(async () => {
    const p = sh("echo early >&2; (sleep 3 &) ; exit 5", { stderr: "capture" });
    const s = await waitExit(p, 2000);
    assertEquals(s.kind === "exited" && s.code, 5);
    assertEquals(dec.decode(s.stderr), "early\n");
  });
});

Deno.test("`Process.kill()` leaves no zombie and no fd over 200 spawn/kill cycles", async () => {
  const before = openFds();
  for (let i = 0; i < 200; i++) {
    const p = Process.spawn("/bin/sleep", {
      args: ["10"],
      spawnPath: i % 2 ? "posix_spawn" : "auto",
      stderr: i % 3 === 0 ? "capture" : "null",
    });
    p.kill();
    const s = await waitExit(p);
    assertEquals(s.kind === "signaled" && s.signal, "SIGKILL");
    assert(!procExists(p.pid!), `zombie ${p.pid}`);
  }
  assertEquals(watchedCount(), 0);
  assertEquals([...openFds()].filter((fd) => !before.has(fd)), []);
});

test.userns("`Process.exited` resolves for each of 50 concurrent children through one watcher", async () => {
  await withoutFdLeak(async () => {
    const procs = Array.from(
      { length: 50 },
      (_, i) =>
        sh(`sleep 0.2; exit ${i}`, {
          isolate: USERNS && i % 5 === 0 ? true : undefined,
        }),
    );
    assertEquals(watchedCount(), 50);
    const got = await within(
      Promise.all(procs.map((p) => p.exited)),
      10_000,
      "50 children",
    );
    assertEquals(got, procs.map((_, i) => ({ kind: "exited", code: i })));
    for (const p of procs) assert(!procExists(p.pid!));
    assertEquals(watchedCount(), 0);
  });
});

Deno.test("`Process.start()` throws ProcessSpawnError with errno when exec fails", async () => {
  const noexec = await Deno.makeTempFile({ dir: "/tmp", prefix: "isola-" });
  try {
    await Deno.writeTextFile(noexec, "#!/bin/sh\nexit 0\n");
    await withoutFdLeak(() => {
      for (const spawnPath of PATHS) {
        for (
          const [path, code, errno] of [
            ["/nonexistent/program", "ENOENT", 2],
            [noexec, "EACCES", 13],
          ] as const
        ) {
          const e = assertThrows(
            () =>
              Process.spawn(path, { spawnPath, stderr: "capture", cwd: "/" }),
            ProcessSpawnError,
          );
          assertInstanceOf(e, SyscallError);
          assertEquals([e.code, e.errno, e.path], [code, errno, path]);
          assertMatch(e.message, new RegExp(`^Cannot spawn process .*${code}`));
          if (spawnPath === "clone3") assertEquals(e.step, "execve");
        }
      }
      const e = assertThrows(
        () => Process.spawn("/bin/true", { cwd: "/nonexistent" }),
        ProcessSpawnError,
      );
      assertEquals(e.code, "ENOENT");
      if (clone3Available()) assertEquals(e.step, "chdir");
      assertThrows(
        () => Process.spawn("no-such-program-isola"),
        ProcessSpawnError,
        "ENOENT",
      );
    });
    assertEquals(watchedCount(), 0);
  } finally {
    await Deno.remove(noexec);
  }
});

Deno.test("`Process.start()` throws TypeError/RangeError and spawns nothing when input is bad", async () => {
  await withoutFdLeak(async () => {
    const closed = memfdCreate("closed", MFD.MFD_CLOEXEC);
    new OwnedFd(closed).close();
    const cases: [() => unknown, ErrorConstructor][] = [
      [() => Process.spawn(""), TypeError],
      [() => Process.spawn(42 as unknown as string), TypeError],
      [() => Process.spawn("/bin/true", { args: ["a\0b"] }), TypeError],
      [() => Process.spawn("/bin/true", { keepFds: [-1] }), RangeError],
      [() => Process.spawn("/bin/true", { keepFds: [1.5] }), RangeError],
      [() => Process.spawn("/bin/true", { keepFds: [closed] }), RangeError],
      [() => Process.spawn("/bin/true", { keepFds: [1] }), RangeError],
      [
        () => Process.spawn("/bin/true", { stdout: "capture" as "null" }),
        TypeError,
      ],
      [() => Process.spawn("/bin/true", { env: { "A=B": "1" } }), TypeError],
      [
        () =>
          Process.spawn("/bin/true", {
            isolate: { parentDeathSignal: "SIGNOPE" as "SIGKILL" },
          }),
        TypeError,
      ],
      [() => new Process().kill(), TypeError],
      [() => new Process().describe(), TypeError],
      // Arguments passed where the options go, and options of a wrong type
      // or an unknown name: each named in the message.
      [
        () =>
          Process.spawn(
            "/bin/sh",
            ["-c", "exit 1"] as unknown as Record<string, never>,
          ),
        TypeError,
      ],
      [
        () => Process.spawn("/bin/true", { args: "hello" as unknown as [] }),
        TypeError,
      ],
      [
        () => Process.spawn("/bin/true", { clearEnv: 1 as unknown as true }),
        TypeError,
      ],
      [
        () =>
          Process.spawn(
            "/bin/true",
            { isolated: true } as unknown as Record<string, never>,
          ),
        TypeError,
      ],
      [
        () =>
          Process.spawn("/bin/true", {
            isolate: { filesystem: { read: ["relative/path"] } },
          }),
        TypeError,
      ],
      [
        () =>
          Process.spawn("/bin/true", { isolate: { limits: { nofile: -1 } } }),
        RangeError,
      ],
      [
        () =>
          Process.spawn("/bin/true", {
            isolate: { userNamespace: false, mountNamespace: true },
          }),
        TypeError,
      ],
    ];
    for (const [fn, type] of cases) assertThrows(fn, type);
    assertThrows(
      () => Process.spawn("/bin/true", { args: "hello" as unknown as [] }),
      TypeError,
      "args",
    );
    assertThrows(
      () =>
        Process.spawn(
          "/bin/true",
          { isolated: true } as unknown as Record<string, never>,
        ),
      TypeError,
      '"isolated"',
    );
    await assertRejects(() => new Process().terminate(), TypeError);
    assertEquals(watchedCount(), 0);

    await using p = Process.spawn("/bin/sleep", { args: ["10"] });
    assertThrows(() => p.start("/bin/true"), TypeError, "already started");
    assertThrows(() => p.kill("SIGBOGUS" as "SIGKILL"), TypeError);
    assertThrows(() => p.kill(0), TypeError);
    await assertRejects(() => p.terminate({ grace: -1 }), RangeError);
    assertThrows(() => p.waitSync(NaN), RangeError, "timeoutMs");
    assertThrows(() => p.waitSync(-1), RangeError);
    assert(p.running);
  });
});

test.userns("`Process.terminate()` of an isolated child (pid 1) without a SIGTERM handler ends it at once; with one it delivers SIGTERM", async () => {
  if (!clone3Available()) return;
  await withoutFdLeak(async () => {
    // sleep catches nothing: as pid 1 it would ignore SIGTERM for the
    // whole grace; terminate() sends SIGKILL at once instead.
    await using plain = Process.spawn("/bin/sleep", {
      args: ["30"],
      isolate: true,
    });
    // A grace far beyond the wait's timeout: only an immediate SIGKILL
    // can end it in time.
    const a = await within(
      plain.terminate({ grace: 600_000 }),
      10_000,
      "terminate of pid 1",
    );
    assertEquals(a.kind === "signaled" && a.signal, "SIGKILL");
    // A shell with a TERM trap gets SIGTERM and exits by its own hand.
    using ready = createMemfd();
    await using trapping = Process.spawn("/bin/sh", {
      args: [
        "-c",
        "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
      ],
      isolate: true,
      stdout: ready,
    });
    const deadline = performance.now() + 5000;
    while (dec.decode(readFd(ready)) === "" && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(
      await within(trapping.terminate({ grace: 600_000 }), 10_000, "trap"),
      { kind: "exited", code: 7 },
    );
  });
});

Deno.test("`Process.terminate()` escalates to SIGKILL when the child ignores SIGTERM", async () => {
  await withoutFdLeak(async () => {
    using ready = createMemfd();
    const stubborn = sh("trap '' TERM; echo ready; exec sleep 10", {
      stdout: ready,
    });
    const deadline = performance.now() + 5000;
    while (dec.decode(readFd(ready)) !== "ready\n") {
      assert(performance.now() < deadline, "child never got ready");
      await new Promise((r) => setTimeout(r, 5));
    }
    const t0 = performance.now();
    const s = await within(stubborn.terminate({ grace: 100 }), 5000, "kill");
    assertEquals(s.kind === "signaled" && s.signal, "SIGKILL");
    assert(performance.now() - t0 >= 90);

    const polite = Process.spawn("/bin/sleep", { args: ["10"] });
    const s2 = await within(polite.terminate({ grace: 5000 }), 4000, "term");
    assertEquals(s2.kind === "signaled" && s2.signal, "SIGTERM");
    assertEquals(await polite.terminate(), s2); // already ended
  });
});

Deno.test("`Process[Symbol.asyncDispose]()` kills and reaps when the scope ends", async () => {
  await withoutFdLeak(async () => {
    let pid = 0;
    let proc: Process | undefined;
    {
      await using p = Process.spawn("/bin/sleep", {
        args: ["10"],
        stderr: "capture",
      });
      pid = p.pid!;
      proc = p;
      assert(procExists(pid));
    }
    assert(!procExists(pid), "child still there after dispose");
    assertEquals(proc.exitStatus?.kind, "signaled");
    await proc[Symbol.asyncDispose](); // idempotent
    await new Process()[Symbol.asyncDispose](); // never started: nothing
  });
});

Deno.test("`Process` dispatches an `exit` event when the child ends", async () => {
  await withoutFdLeak(async () => {
    const p = sh("exit 7");
    const ev = await within(
      new Promise<ProcessExitEvent>((r) => p.addEventListener("exit", r)),
      5000,
      "exit event",
    );
    assertInstanceOf(ev, ProcessExitEvent);
    assertEquals(ev.exit, { kind: "exited", code: 7 });
  });
});

Deno.test("`Process.start()` refuses isolation it cannot give unless allowUnisolated", async () => {
  await withoutFdLeak(async () => {
    const e = assertThrows(
      () =>
        Process.spawn("/bin/true", { isolate: true, spawnPath: "posix_spawn" }),
      ProcessIsolationError,
    );
    assertEquals(
      e.layers,
      ISOLATION_LAYERS.filter((l) =>
        !["clearSignalHandlers", "cgroupLimits"].includes(l)
      ),
    );
    assertMatch(
      e.message,
      /^Cannot spawn isolated process: parentDeathSignal, userNamespace/,
    );
    assertEquals(watchedCount(), 0);

    const p = Process.spawn("/bin/true", {
      isolate: { userNamespace: true, networkNamespace: false },
      spawnPath: "posix_spawn",
      allowUnisolated: true,
    });
    const d = p.describe();
    assertEquals(d.isolation.userNamespace, false);
    assertEquals(d.isolation.networkNamespace, false);
    assertEquals(d.isolation.clearSignalHandlers, true);
    assert(!d.notApplied.some((n) => n.startsWith("networkNamespace")));
    assertMatch(
      d.notApplied.find((n) => n.startsWith("userNamespace"))!,
      /^userNamespace: not available with posix_spawn/,
    );
    assertEquals(await waitExit(p), { kind: "exited", code: 0 });
  });
});

Deno.test("`Process.start()` resets ignored signals in the child when the parent ignores them", async () => {
  // Rust (and so Deno) ignores SIGPIPE; a child must not inherit that.
  await withoutFdLeak(async () => {
    for (const spawnPath of PATHS) {
      using out = createMemfd();
      const q = sh("grep -E '^Sig(Ign|Blk)' /proc/self/status", {
        stdout: out,
        spawnPath,
      });
      await waitExit(q);
      const text = dec.decode(readFd(out));
      assertMatch(text, /SigBlk:\s+0+\n/);
      const ign = BigInt("0x" + text.match(/SigIgn:\s+([0-9a-f]+)/)![1]);
      // posix_spawn's SETSIGDEF cannot name glibc's internal signals 32
      // and 33 (sigfillset leaves them out); the trampoline resets all.
      const mask = spawnPath === "clone3" ? ~0n : 0x7fffffffn;
      assertEquals(ign & mask, 0n, `${spawnPath}: SigIgn ${ign.toString(16)}`);
    }
  });
});
