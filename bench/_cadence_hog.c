// A CPU hog for bench/cadence_bench.ts's "under load" rows: spins until
// killed. volatile keeps the compiler from removing the loop.
int main(void) {
  volatile unsigned long n = 0;
  for (;;) n++;
}
