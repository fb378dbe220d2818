/*
 * A peer for tests/isolation/shared_network_test.ts, run in jailed
 * children that may share a network namespace.
 *
 *   abstract_peer listen NAME    binds the abstract Unix socket NAME,
 *                                prints "ready", waits to be killed
 *   abstract_peer connect NAME   prints "connected" or the errno name, then
 *                                its network namespace (/proc/self/ns/net)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 3) return 2;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strnlen(argv[2], sizeof a.sun_path - 1);
	memcpy(a.sun_path + 1, argv[2], n); /* abstract: NUL, then the name */
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) return 3;
	if (strcmp(argv[1], "listen") == 0) {
		if (bind(s, (struct sockaddr *)&a, len) || listen(s, 4)) {
			printf("%s\n", strerrorname_np(errno));
			return 1;
		}
		printf("ready\n");
		fflush(stdout);
		for (;;) pause();
	}
	const char *said = connect(s, (struct sockaddr *)&a, len) == 0
		? "connected" : strerrorname_np(errno);
	char ns[64] = "?";
	ssize_t got = readlink("/proc/self/ns/net", ns, sizeof ns - 1);
	if (got > 0) ns[got] = 0;
	printf("%s %s\n", said, ns);
	return 0;
}
