/**
 * Struct layouts for LP64 Linux (x86_64 and aarch64 have the same layouts
 * for every struct here). Fields are spelled as in C; each table gives byte
 * offsets and the total `SIZEOF`. `tests/ffi/structs_test.ts` pins them
 * against the C compiler where one is available, and against constants
 * otherwise.
 *
 * @module
 */

/** `struct iovec` (readv(2)). */
export const iovec = Object.freeze({
  iov_base: 0, // void *
  iov_len: 8, // size_t
  SIZEOF: 16,
});

/** `struct msghdr` (recvmsg(2)). */
export const msghdr = Object.freeze({
  msg_name: 0, // void *
  msg_namelen: 8, // socklen_t (u32), then 4 bytes of padding
  msg_iov: 16, // struct iovec *
  msg_iovlen: 24, // size_t
  msg_control: 32, // void *
  msg_controllen: 40, // size_t
  msg_flags: 48, // int, then 4 bytes of padding
  SIZEOF: 56,
});

/** `struct cmsghdr` (cmsg(3)); the data follows the aligned header. */
export const cmsghdr = Object.freeze({
  cmsg_len: 0, // size_t
  cmsg_level: 8, // int
  cmsg_type: 12, // int
  SIZEOF: 16,
});

/** `CMSG_ALIGN(len)`: rounds up to the alignment of `size_t` (8). */
export function CMSG_ALIGN(len: number): number {
  return (len + 7) & ~7;
}

/** `CMSG_SPACE(len)`: bytes a control message with `len` data bytes takes. */
export function CMSG_SPACE(len: number): number {
  return CMSG_ALIGN(cmsghdr.SIZEOF) + CMSG_ALIGN(len);
}

/** `CMSG_LEN(len)`: the `cmsg_len` value for `len` data bytes. */
export function CMSG_LEN(len: number): number {
  return CMSG_ALIGN(cmsghdr.SIZEOF) + len;
}

/** Offset of the data of the control message at offset 0: `CMSG_DATA`. */
export const CMSG_DATA_OFFSET: number = CMSG_ALIGN(cmsghdr.SIZEOF);

/** `struct pollfd` (poll(2)). */
export const pollfd = Object.freeze({
  fd: 0, // int
  events: 4, // short
  revents: 6, // short
  SIZEOF: 8,
});

/**
 * `siginfo_t` (sigaction(2)), the fields waitid(2) fills for a child; the
 * union starts at 16 on LP64.
 */
export const siginfo_t = Object.freeze({
  si_signo: 0, // int
  si_errno: 4, // int
  si_code: 8, // int
  si_pid: 16, // pid_t
  si_uid: 20, // uid_t
  si_status: 24, // int
  SIZEOF: 128,
});

/** `struct clone_args` (clone3(2)), CLONE_ARGS_SIZE_VER2. */
export const clone_args = Object.freeze({
  flags: 0, // u64
  pidfd: 8, // u64 (int * in the parent)
  child_tid: 16, // u64
  parent_tid: 24, // u64
  exit_signal: 32, // u64
  stack: 40, // u64
  stack_size: 48, // u64
  tls: 56, // u64
  set_tid: 64, // u64
  set_tid_size: 72, // u64
  cgroup: 80, // u64
  SIZEOF: 88,
});

/**
 * Opaque glibc types from `<spawn.h>` and `<signal.h>` that isola only
 * allocates and hands to their init functions: their sizes on LP64 glibc.
 */
export const glibc_opaque = Object.freeze({
  posix_spawn_file_actions_t: 80,
  posix_spawnattr_t: 336,
  sigset_t: 128,
});

/**
 * `struct epoll_event` (epoll_ctl(2)): packed on x86_64 (12 bytes), natural
 * alignment elsewhere (16 bytes on aarch64).
 */
export const epoll_event = Object.freeze(
  Deno.build.arch === "x86_64"
    ? { events: 0, data: 4, SIZEOF: 12 } // u32, then epoll_data_t (u64)
    : { events: 0, data: 8, SIZEOF: 16 },
);
