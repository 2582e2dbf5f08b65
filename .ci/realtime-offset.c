/* realtime-offset: an LD_PRELOAD library that shifts one process's wall clock by an offset in
 * ms read from the file named by $FENCELAB_CLOCK_OFFSET_FILE (e.g. "5000", "-5000"; a missing,
 * empty or unreadable file means 0). CLOCK_REALTIME, CLOCK_REALTIME_COARSE, gettimeofday and
 * time are shifted; every other clock (MONOTONIC above all) passes through unchanged.
 *
 * Why: Redis keeps a key's expiry as an absolute wall-clock time (gettimeofday), so a wall
 * step on one server expires locks early or late. Linux time namespaces never offset
 * CLOCK_REALTIME, `date -s` would step the shared machine, and libfaketime 0.9.10 aborts this
 * Redis with "Unexpected recursive calls to clock_gettime()". So: the real clock straight from
 * the kernel with syscall() (never through libc, which would call back into us), the file
 * read with raw syscalls into a stack buffer (no malloc, no stdio, nothing that reads a clock).
 * Only calls through the dynamic symbols are shifted: glibc's own internal clock reads (e.g.
 * in timespec_get) are not, and Redis reads its clock with gettimeofday (server.c, ustime).
 *
 * Build: cc -shared -fPIC -O2 -o realtime-offset.so realtime-offset.c
 * Use:   FENCELAB_CLOCK_OFFSET_FILE=/tmp/off LD_PRELOAD=./realtime-offset.so redis-server ...
 * Write the file by rename (write a temp file, mv it over) so a reader never sees it empty. */
#define _GNU_SOURCE
/* Our gettimeofday's prototype must not clash with whichever the installed glibc declares
 * (struct timezone * before 2.31, void * since), so the header's is renamed away. */
#define gettimeofday fencelab_hidden_gettimeofday
#include <sys/time.h>
#undef gettimeofday
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long read_offset_ms(void) {
  const char *path = getenv("FENCELAB_CLOCK_OFFSET_FILE");
  if (path == NULL) return 0;
  /* openat, not open: aarch64 has no SYS_open. */
  long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[32];
  long n = syscall(SYS_read, fd, buf, sizeof buf);
  syscall(SYS_close, fd);
  long i = 0, digits = 0, negative = 0;
  long long ms = 0;
  while (i < n && (buf[i] == ' ' || buf[i] == '\t')) i++;
  if (i < n && (buf[i] == '-' || buf[i] == '+')) negative = buf[i++] == '-';
  /* 15 digits at most: ms beyond that would overflow the ns sum below. */
  for (; i < n && buf[i] >= '0' && buf[i] <= '9' && digits < 15; i++, digits++)
    ms = ms * 10 + (buf[i] - '0');
  return negative ? -ms : ms;
}

/* The offset, re-read at most once per ms of monotonic time: Redis reads the wall clock
 * several times per command, and one syscall is cheaper than the open/read/close three. */
static long long offset_ms(void) {
  static long long cached_ms, next_read_ns; /* races are benign: both hold a recent value */
  struct timespec m;
  if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &m) != 0) return read_offset_ms();
  long long now_ns = m.tv_sec * 1000000000LL + m.tv_nsec;
  if (now_ns < __atomic_load_n(&next_read_ns, __ATOMIC_ACQUIRE))
    return __atomic_load_n(&cached_ms, __ATOMIC_RELAXED);
  long long ms = read_offset_ms();
  __atomic_store_n(&cached_ms, ms, __ATOMIC_RELAXED);
  __atomic_store_n(&next_read_ns, now_ns + 1000000, __ATOMIC_RELEASE);
  return ms;
}

/* ts + offset, normalised so that 0 <= tv_nsec < 1e9 also for negative offsets. */
static void shift(struct timespec *ts) {
  long long ns = ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ms() * 1000000LL;
  long long sec = ns / 1000000000LL, rem = ns % 1000000000LL;
  if (rem < 0) { rem += 1000000000LL; sec -= 1; }
  ts->tv_sec = (time_t)sec;
  ts->tv_nsec = (long)rem;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
  long r = syscall(SYS_clock_gettime, clock, ts);
  if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) shift(ts);
  return (int)r;
}

int gettimeofday(struct timeval *tv, void *tz) {
  struct timespec ts;
  if (tz != NULL && syscall(SYS_gettimeofday, NULL, tz) != 0) return -1;
  if (tv == NULL) return 0;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
  tv->tv_sec = ts.tv_sec;
  tv->tv_usec = ts.tv_nsec / 1000;
  return 0;
}

/* Redis also reads whole seconds with time() (lastsave, client idle times): keep them in step. */
time_t time(time_t *out) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
  if (out != NULL) *out = ts.tv_sec;
  return ts.tv_sec;
}
