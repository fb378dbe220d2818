/*
 * A probe for tests/isolation/borrowed_identity_test.ts, run as uid 65534
 * (a jailed child without a PID namespace, so it sees the host's pids):
 *
 *   signal_probe PID TID MILLISECONDS
 *
 * For that long, asks the kernel whether it may signal thread TID of
 * process PID (tgkill with signal 0: nothing is sent) and prints
 * "<tries> <allowed>".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
	if (argc != 4) return 2;
	pid_t pid = atoi(argv[1]), tid = atoi(argv[2]);
	long end = now_ms() + atol(argv[3]), tries = 0, allowed = 0;
	printf("ready\n");
	fflush(stdout);
	while (now_ms() < end) {
		tries++;
		if (syscall(SYS_tgkill, pid, tid, 0) == 0) allowed++;
	}
	printf("%ld %ld\n", tries, allowed);
	return 0;
}
