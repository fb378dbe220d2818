// The C baseline of bench/cadence_bench.ts: NPIPES child processes, each an
// echo server on its own SOCK_SEQPACKET socketpair, both sides blocking in
// recv(2). The parent makes CALLS calls of 64 bytes, rotating over the
// pipes, one every PERIOD_US / NPIPES microseconds (0: back to back), and
// prints each round trip in microseconds, one per line.
//   usage: cadence_pair NPIPES PERIOD_US CALLS
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MSG_SIZE = 64, MAX_PIPES = 16 };

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void serve(int fd) {
  char buf[MSG_SIZE];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) _exit(0);
    if (send(fd, buf, n, MSG_NOSIGNAL) != n) _exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  int npipes = atoi(argv[1]);
  long period = atol(argv[2]);
  int calls = atoi(argv[3]);
  if (npipes < 1 || npipes > MAX_PIPES) return 2;
  int fds[MAX_PIPES];
  pid_t pids[MAX_PIPES];
  for (int i = 0; i < npipes; i++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return 1;
    pids[i] = fork();
    if (pids[i] == 0) {
      close(sv[0]);
      for (int j = 0; j < i; j++) close(fds[j]); // or they never see EOF
      serve(sv[1]);
    }
    close(sv[1]);
    fds[i] = sv[0];
  }
  char buf[MSG_SIZE] = {0};
  long step_ns = period * 1000 / npipes;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (int i = 0; i < calls; i++) {
    if (step_ns > 0) {
      next.tv_nsec += step_ns;
      while (next.tv_nsec >= 1000000000) {
        next.tv_nsec -= 1000000000;
        next.tv_sec++;
      }
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    int fd = fds[i % npipes];
    double t0 = now_us();
    if (send(fd, buf, sizeof buf, MSG_NOSIGNAL) != sizeof buf) return 1;
    if (recv(fd, buf, sizeof buf, 0) != sizeof buf) return 1;
    printf("%.2f\n", now_us() - t0);
  }
  for (int i = 0; i < npipes; i++) {
    close(fds[i]);
    waitpid(pids[i], NULL, 0);
  }
  return 0;
}
