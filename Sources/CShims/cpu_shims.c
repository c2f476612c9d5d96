// sched_getaffinity and the CPU_* macros need _GNU_SOURCE before any system header.
#define _GNU_SOURCE
#include <sched.h>

int ap_affinity_cpu_count(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  return CPU_COUNT(&set);
}
