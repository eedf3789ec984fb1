// The kernel floor of one atomic 4 KiB replace (bench/floor/run.sh): privdav's way (O_TMPFILE, write,
// fdatasync unless mode 0, linkat, rename) and Apache mod_dav_fs's (a temporary name, write, close,
// rename); CPU (getrusage) and wall time per upload. Usage: replace-floor DIR MODE (0, 1 or 2).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
static double cpu(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_utime.tv_sec * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_sec * 1e6 + u.ru_stime.tv_usec; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
int main(int argc, char **argv) {
  const char *dir = argv[1]; int mode = atoi(argv[2]); int n = 2000; char buf[4096]; memset(buf, 'p', sizeof buf);
  char target[512], tmp[512], proc[64];
  double c0 = cpu(), t0 = now();
  for (int i = 0; i < n; i++) {
    snprintf(target, sizeof target, "%s/f-%d.bin", dir, i % 64);
    snprintf(tmp, sizeof tmp, "%s/.tmp-%d", dir, i);
    if (mode <= 1) {
      int fd = open(dir, O_TMPFILE | O_WRONLY, 0644);
      if (write(fd, buf, sizeof buf) != sizeof buf) return 1;
      if (mode == 1) fdatasync(fd);
      snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
      if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0) { perror("linkat"); return 1; }
      rename(tmp, target);
      close(fd);
    } else {
      int fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC, 0644);
      if (write(fd, buf, sizeof buf) != sizeof buf) return 1;
      close(fd);
      rename(tmp, target);
    }
  }
  printf("%s: %.1f us CPU, %.1f us wall per upload\n", mode == 0 ? "O_TMPFILE+linkat+rename" : mode == 1 ? "O_TMPFILE+fdatasync+linkat+rename" : "temp name+rename (Apache)", (cpu() - c0) / n, (now() - t0) / n);
  return 0;
}
