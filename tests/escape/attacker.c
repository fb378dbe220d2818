/*
 * The escape attempts of tests/escape/escape_test.ts: a program that tries,
 * one by one, to reach what a sandboxed plug-in must not reach, and prints
 * one line per attempt:
 *
 *   <attempt>\t<REFUSED|ESCAPED>\t<errno name or what it got>
 *
 * Probes are non-destructive: a file it manages to create is removed at
 * once, a writable sysctl or cgroup file is opened but never written.
 *
 * Usage: attacker PARENT_PID REPO_DIR SECRET VICTIM UNIX_SOCKET TCP_PORT
 *                 SHM_ID KEY_DESCRIPTION HOST_TMP_MARKER ABSTRACT_NAME
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
/* After <sys/socket.h>: newer kernel headers use struct sockaddr here. */
#include <linux/vm_sockets.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/netlink.h>

static void report(const char *what, int escaped, const char *detail) {
	printf("%s\t%s\t%s\n", what, escaped ? "ESCAPED" : "REFUSED", detail);
	fflush(stdout);
}

/* A system call result: >= 0 is an escape, -1 a refusal named by errno. */
static void verdict(const char *what, long r) {
	if (r >= 0) report(what, 1, "succeeded");
	else report(what, 0, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
}

static void try_open(const char *what, const char *path, int flags) {
	int fd = open(path, flags | O_CLOEXEC, 0600);
	verdict(what, fd);
	if (fd >= 0) {
		close(fd);
		if (flags & O_CREAT) unlink(path);
	}
}

static void try_read_contains(const char *what, const char *path,
			      const char *needle) {
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		verdict(what, -1);
		return;
	}
	static char buf[1 << 20];
	ssize_t n, total = 0;
	while ((n = read(fd, buf + total, sizeof buf - 1 - total)) > 0) total += n;
	close(fd);
	buf[total] = 0;
	for (ssize_t i = 0; i < total; i++) if (!buf[i]) buf[i] = ' ';
	if (needle == NULL || strstr(buf, needle)) report(what, 1, "read it");
	else report(what, 0, "not there");
}

int main(int argc, char **argv) {
	if (argc != 11) {
		fprintf(stderr, "usage: see attacker.c\n");
		return 2;
	}
	pid_t parent = atoi(argv[1]);
	const char *repo = argv[2], *secret = argv[3], *victim = argv[4];
	const char *sock = argv[5], *key = argv[8], *marker = argv[9];
	const char *abstract = argv[10];
	int port = atoi(argv[6]), shm = atoi(argv[7]);
	char path[4096];

	/* Files and devices of the host. */
	try_open("write a sysctl (/proc/sys/kernel/core_pattern)",
		 "/proc/sys/kernel/core_pattern", O_WRONLY);
	snprintf(path, sizeof path, "/etc/isola-escape-%d", getpid());
	try_open("create a file in /etc", path, O_WRONLY | O_CREAT | O_EXCL);
	snprintf(path, sizeof path, "%s/isola-escape-%d", repo, getpid());
	try_open("create a file in isola's source tree", path,
		 O_WRONLY | O_CREAT | O_EXCL);
	try_open("read /etc/shadow", "/etc/shadow", O_RDONLY);
	try_read_contains("read a host file outside its paths", secret, NULL);
	try_open("open /dev/kvm", "/dev/kvm", O_RDWR);
	try_open("open /dev/mem", "/dev/mem", O_RDONLY);
	try_open("open a block device (/dev/sda)", "/dev/sda", O_RDONLY);
	try_open("write to /sys (/sys/kernel/mm/transparent_hugepage/enabled)",
		 "/sys/kernel/mm/transparent_hugepage/enabled", O_WRONLY);
	try_open("leave its cgroup (/sys/fs/cgroup/cgroup.procs)",
		 "/sys/fs/cgroup/cgroup.procs", O_WRONLY);
	try_open("leave its cgroup (/sys/fs/cgroup/unified/cgroup.procs)",
		 "/sys/fs/cgroup/unified/cgroup.procs", O_WRONLY);
	{
		int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		/* The test checks the host's /tmp afterwards; here just try. */
		if (fd >= 0) close(fd);
		report("create a file in the host's /tmp (checked by the test)", 0,
		       fd >= 0 ? "created (private /tmp?)" : strerrorname_np(errno));
	}
	/* Metadata of host files: what Landlock has no right for. */
	verdict("chmod a host file (setuid bit)", chmod(victim, 04755));
	verdict("utimensat a host file", utimensat(AT_FDCWD, victim, NULL, 0));
	verdict("setxattr on a host file",
		setxattr(victim, "user.isola", "x", 1, 0));
	/* Other processes. */
	snprintf(path, sizeof path, "/proc/%d/oom_score_adj", parent);
	try_open("raise another process's oom_score_adj", path, O_WRONLY);
	snprintf(path, sizeof path, "/proc/%d/cmdline", parent);
	try_read_contains("read another process's argv (/proc/<pid>/cmdline)",
			  path, NULL);
	snprintf(path, sizeof path, "/proc/%d/environ", parent);
	try_read_contains("read the parent's environment", path, NULL);
	try_read_contains("see the host's Unix sockets (/proc/net/unix)",
			  "/proc/net/unix", sock);
	verdict("signal the parent (kill 0)", kill(parent, 0));
	/* SEIZE does not stop the tracee; the exit of this program detaches. */
	verdict("ptrace the parent", ptrace(PTRACE_SEIZE, parent, 0, 0));
	{
		char buf[8];
		struct iovec l = {buf, sizeof buf}, r = {(void *)0x400000, sizeof buf};
		long n = process_vm_readv(parent, &l, 1, &r, 1, 0);
		/* EFAULT means it was allowed to look: an escape. */
		verdict("read the parent's memory (process_vm_readv)",
			n < 0 && errno == EFAULT ? 0 : n);
	}
	/* IPC: sockets, SysV, keyring, terminal. */
	{
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		strncpy(a.sun_path, sock, sizeof a.sun_path - 1);
		verdict("connect to a host Unix socket (mode 0600)",
			connect(s, (struct sockaddr *)&a, sizeof a));
		close(s);
	}
	{
		/* An abstract name: a NUL, then the name, exactly that long. */
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		size_t n = strnlen(abstract, sizeof a.sun_path - 1);
		memcpy(a.sun_path + 1, abstract, n);
		verdict("connect to the host's abstract Unix socket",
			connect(s, (struct sockaddr *)&a,
				offsetof(struct sockaddr_un, sun_path) + 1 + n));
		close(s);
	}
	{
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons(port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		verdict("connect to the host's 127.0.0.1 listener",
			connect(s, (struct sockaddr *)&a, sizeof a));
		close(s);
	}
	{
		/* vsock is not confined by a network namespace (a VM's host). */
		int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		verdict("open a vsock socket (AF_VSOCK)", s);
		if (s >= 0) close(s);
		/* Unprivileged sockets of this netlink protocol reach each other. */
		s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK);
		verdict("open a NETLINK_USERSOCK socket", s);
		if (s >= 0) close(s);
	}
	{
		void *p = shmat(shm, NULL, SHM_RDONLY);
		verdict("attach the host's SysV shared memory",
			p == (void *)-1 ? -1 : 0);
		if (p != (void *)-1) shmdt(p);
	}
	verdict("find the host's session key (KEYCTL_SEARCH)",
		syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, "user",
			key, 0));
	{
		long n = syscall(SYS_keyctl, KEYCTL_READ, KEY_SPEC_SESSION_KEYRING,
				 path, sizeof path);
		if (n > 0) report("read the session keyring (KEYCTL_READ)", 1,
				  "listed keys");
		else if (n == 0) report("read the session keyring (KEYCTL_READ)",
					0, "empty keyring");
		else verdict("read the session keyring (KEYCTL_READ)", -1);
	}
	verdict("add a key (add_key)",
		syscall(SYS_add_key, "user", "isola", "x", 1,
			KEY_SPEC_PROCESS_KEYRING));
	{
		char c = 'x';
		int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
		verdict("type into a terminal (TIOCSTI)",
			ioctl(fd >= 0 ? fd : 0, TIOCSTI, &c));
		if (fd >= 0) close(fd);
	}
	verdict("get a controlling terminal back (open /dev/tty)",
		open("/dev/tty", O_RDWR | O_CLOEXEC));
	/* Kernel attack surface. */
	{
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		verdict("io_uring_setup", syscall(SYS_io_uring_setup, 1, &p));
	}
	{
		struct perf_event_attr a;
		memset(&a, 0, sizeof a);
		a.type = PERF_TYPE_SOFTWARE;
		a.size = sizeof a;
		a.config = PERF_COUNT_SW_CPU_CLOCK;
		a.exclude_kernel = 1;
		verdict("perf_event_open", syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
	}
	verdict("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
	{
		union bpf_attr a;
		memset(&a, 0, sizeof a);
		a.map_type = BPF_MAP_TYPE_ARRAY;
		a.key_size = 4;
		a.value_size = 4;
		a.max_entries = 1;
		verdict("bpf (BPF_MAP_CREATE)", syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a));
	}
	verdict("nested user namespace (unshare CLONE_NEWUSER)",
		unshare(CLONE_NEWUSER));
	verdict("new mount namespace (unshare CLONE_NEWNS)", unshare(CLONE_NEWNS));
	/* A filesystem context attaches nothing: safe to try on a host. */
	{
		long fd = syscall(SYS_fsopen, "tmpfs", 1 /* FSOPEN_CLOEXEC */);
		verdict("make a tmpfs (fsopen)", fd);
		if (fd >= 0) close(fd);
	}
	verdict("chroot", chroot("/"));
	verdict("load a kernel module (finit_module)",
		syscall(SYS_finit_module, 0, "", 0));
	/* Resources. */
	{
		struct rlimit r;
		getrlimit(RLIMIT_NPROC, &r);
		report("unbounded process count (RLIMIT_NPROC)",
		       r.rlim_max == RLIM_INFINITY,
		       r.rlim_max == RLIM_INFINITY ? "unlimited" : "bounded");
		getrlimit(RLIMIT_CORE, &r);
		report("core dumps (RLIMIT_CORE)", r.rlim_max != 0,
		       r.rlim_max != 0 ? "allowed" : "0");
		r.rlim_cur = r.rlim_max = RLIM_INFINITY;
		verdict("raise RLIMIT_NOFILE to unlimited",
			setrlimit(RLIMIT_NOFILE, &r));
	}
	verdict("become root again (setuid 0)", getuid() == 0 ? 0 : setuid(0));
	return 0;
}
