/*
 * The attacks of tests/isolation/shared_network_attack_test.ts on the
 * network namespace isola's jailed children share. Two roles:
 *
 *   net_attacker victim NAME PORT
 *     Opens what another child could aim at: an abstract stream listener
 *     and an abstract datagram socket named NAME, a NETLINK_USERSOCK socket
 *     bound to port id PORT, UDP and TCP sockets on 0.0.0.0:PORT. Prints
 *     "ready", then one line "RECEIVED <what>" for anything that arrives,
 *     until killed.
 *
 *   net_attacker attack NAME PORT
 *     Tries, one by one, to reach the victim and to change the namespace,
 *     and prints one line per attempt:
 *       <attempt>\t<REFUSED|ESCAPED>\t<errno name or what it got>
 *     after a first line "net <its /proc/self/ns/net>", then "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
/* After <sys/socket.h>: newer kernel headers use struct sockaddr here. */
#include <linux/vm_sockets.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static void report(const char *what, int escaped, const char *detail) {
	printf("%s\t%s\t%s\n", what, escaped ? "ESCAPED" : "REFUSED", detail);
	fflush(stdout);
}

/* A system call result: >= 0 is an escape, -1 a refusal named by errno. */
static void verdict(const char *what, long r) {
	if (r >= 0) report(what, 1, "succeeded");
	else report(what, 0, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	size_t n = strnlen(name, sizeof a->sun_path - 1);
	memcpy(a->sun_path + 1, name, n); /* abstract: NUL, then the name */
	return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

static struct sockaddr_in any_addr(int port, in_addr_t host) {
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(host)};
	return a;
}

static int victim(const char *name, int port) {
	struct sockaddr_un a;
	socklen_t alen = abstract_addr(&a, name);
	char dgram_name[108];
	snprintf(dgram_name, sizeof dgram_name, "%s-dgram", name);
	struct sockaddr_un d;
	socklen_t dlen = abstract_addr(&d, dgram_name);
	struct sockaddr_nl nl = {.nl_family = AF_NETLINK, .nl_pid = port};
	struct sockaddr_in in = any_addr(port, INADDR_ANY);
	struct pollfd p[5];
	const char *what[5] = {"abstract stream", "abstract datagram",
			       "netlink usersock", "udp", "tcp"};
	p[0].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	p[1].fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	p[2].fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK);
	p[3].fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	p[4].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (bind(p[0].fd, (struct sockaddr *)&a, alen) || listen(p[0].fd, 4) ||
	    bind(p[1].fd, (struct sockaddr *)&d, dlen) ||
	    bind(p[3].fd, (struct sockaddr *)&in, sizeof in) ||
	    bind(p[4].fd, (struct sockaddr *)&in, sizeof in) ||
	    listen(p[4].fd, 4)) {
		printf("setup %s\n", strerrorname_np(errno));
		return 1;
	}
	/* Where seccomp refuses the socket, the victim has no such door. */
	if (p[2].fd >= 0 && bind(p[2].fd, (struct sockaddr *)&nl, sizeof nl)) {
		printf("setup netlink %s\n", strerrorname_np(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 5; i++) p[i].events = POLLIN;
	for (;;) {
		if (poll(p, 5, -1) < 0) continue;
		for (int i = 0; i < 5; i++) {
			if (p[i].fd < 0 || !(p[i].revents & POLLIN)) continue;
			char buf[256];
			int c = (i == 0 || i == 4) ? accept(p[i].fd, NULL, NULL) : -1;
			if (c >= 0) close(c);
			else recv(p[i].fd, buf, sizeof buf, MSG_DONTWAIT);
			printf("RECEIVED %s\n", what[i]);
			fflush(stdout);
		}
	}
}

/* Brings the loopback up through rtnetlink (RTM_NEWLINK, IFF_UP). */
static void loopback_up_netlink(void) {
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s < 0) {
		verdict("bring the loopback up (rtnetlink RTM_NEWLINK)", -1);
		return;
	}
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = {
		.h = {.nlmsg_len = sizeof req, .nlmsg_type = RTM_NEWLINK,
		      .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK},
		.i = {.ifi_family = AF_UNSPEC, .ifi_index = 1 /* lo */,
		      .ifi_flags = IFF_UP, .ifi_change = IFF_UP},
	};
	struct sockaddr_nl k = {.nl_family = AF_NETLINK};
	char buf[512];
	long r = sendto(s, &req, sizeof req, 0, (struct sockaddr *)&k, sizeof k);
	if (r >= 0) r = recv(s, buf, sizeof buf, 0);
	if (r >= (long)sizeof(struct nlmsghdr)) {
		/* The kernel answers with NLMSG_ERROR; error 0 is success. */
		struct nlmsgerr *e = NLMSG_DATA((struct nlmsghdr *)buf);
		errno = -e->error;
		r = e->error == 0 ? 0 : -1;
	}
	verdict("bring the loopback up (rtnetlink RTM_NEWLINK)", r);
	close(s);
}

static void loopback_up_ioctl(void) {
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq r;
	memset(&r, 0, sizeof r);
	strcpy(r.ifr_name, "lo");
	r.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
	verdict("bring the loopback up (ioctl SIOCSIFFLAGS)",
		ioctl(s, SIOCSIFFLAGS, &r));
	close(s);
}

static void try_socket(const char *what, int family, int type, int proto) {
	int s = socket(family, type | SOCK_CLOEXEC, proto);
	verdict(what, s);
	if (s >= 0) close(s);
}

/* A namespace descriptor's owner or parent (nsfs ioctl). */
static void try_ns_ioctl(const char *what, const char *path, unsigned long req) {
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long r = fd < 0 ? -1 : ioctl(fd, req);
	verdict(what, r);
	if (r >= 0) close(r);
	if (fd >= 0) close(fd);
}

static void attack(const char *name, int port) {
	char ns[64] = "?";
	ssize_t got = readlink("/proc/self/ns/net", ns, sizeof ns - 1);
	if (got > 0) ns[got] = 0;
	printf("net %s\n", ns); /* which namespace it attacks from */
	loopback_up_netlink();
	loopback_up_ioctl();
	try_socket("open a packet socket (AF_PACKET)", AF_PACKET, SOCK_RAW,
		   htons(ETH_P_ALL));
	try_socket("open a raw IPv4 socket", AF_INET, SOCK_RAW, IPPROTO_RAW);
	try_socket("open a raw IPv6 socket", AF_INET6, SOCK_RAW, IPPROTO_RAW);
	try_socket("open an ICMP ping socket", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	{
		/* vsock is not namespaced: a host listener would be reachable. */
		int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_vm v = {.svm_family = AF_VSOCK,
					.svm_cid = VMADDR_CID_LOCAL,
					.svm_port = port};
		verdict("connect over vsock (VMADDR_CID_LOCAL)",
			s < 0 ? -1 : connect(s, (struct sockaddr *)&v, sizeof v));
		if (s >= 0) close(s);
	}
	{
		struct sockaddr_un a;
		socklen_t len = abstract_addr(&a, name);
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		verdict("connect to another child's abstract stream socket",
			connect(s, (struct sockaddr *)&a, len));
		close(s);
	}
	{
		char dgram_name[108];
		snprintf(dgram_name, sizeof dgram_name, "%s-dgram", name);
		struct sockaddr_un a;
		socklen_t len = abstract_addr(&a, dgram_name);
		int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		verdict("sendto another child's abstract datagram socket",
			sendto(s, "x", 1, 0, (struct sockaddr *)&a, len));
		close(s);
	}
	{
		/* NETLINK_USERSOCK lets an unprivileged socket send to a port. */
		int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
			       NETLINK_USERSOCK);
		struct {
			struct nlmsghdr h;
			char data[8];
		} m = {.h = {.nlmsg_len = sizeof m, .nlmsg_type = NLMSG_MIN_TYPE}};
		struct sockaddr_nl to = {.nl_family = AF_NETLINK, .nl_pid = port};
		verdict("send to another child's NETLINK_USERSOCK port",
			s < 0 ? -1 : sendto(s, &m, sizeof m, 0,
					    (struct sockaddr *)&to, sizeof to));
		if (s >= 0) close(s);
	}
	{
		struct sockaddr_in to = any_addr(port, INADDR_LOOPBACK);
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		verdict("send UDP to 127.0.0.1 in the shared namespace",
			sendto(s, "x", 1, 0, (struct sockaddr *)&to, sizeof to));
		close(s);
		s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		verdict("connect TCP to 127.0.0.1 in the shared namespace",
			connect(s, (struct sockaddr *)&to, sizeof to));
		close(s);
	}
	{
		struct sockaddr_in to = any_addr(port, INADDR_BROADCAST);
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		int on = 1;
		setsockopt(s, SOL_SOCKET, SO_BROADCAST, &on, sizeof on);
		verdict("send UDP broadcast in the shared namespace",
			sendto(s, "x", 1, 0, (struct sockaddr *)&to, sizeof to));
		close(s);
	}
	/* The owner of the shared namespace, and its user namespace's parent:
	 * both are outside the child's user namespace (ns_get_owner). */
	try_ns_ioctl("open the shared namespace's owner (NS_GET_USERNS)",
		     "/proc/self/ns/net", NS_GET_USERNS);
	try_ns_ioctl("open the parent user namespace (NS_GET_PARENT)",
		     "/proc/self/ns/user", NS_GET_PARENT);
	{
		int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		verdict("setns into the shared network namespace again",
			syscall(SYS_setns, fd, CLONE_NEWNET));
		if (fd >= 0) close(fd);
	}
	verdict("unshare a network namespace", unshare(CLONE_NEWNET));
	printf("done\n");
}

int main(int argc, char **argv) {
	if (argc != 4) return 2;
	int port = atoi(argv[3]);
	if (strcmp(argv[1], "victim") == 0) return victim(argv[2], port);
	if (strcmp(argv[1], "attack") == 0) {
		attack(argv[2], port);
		return 0;
	}
	return 2;
}
