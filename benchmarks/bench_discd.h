/* SPDX-License-Identifier: MIT */
/*
 * bench_discd.h — for benchmarks that run a real discd through the test
 * harness (tests/harness/discd_proc.c): where the daemon comes from and
 * where its registry lives.
 */
#ifndef DISC_BENCH_DISCD_H
#define DISC_BENCH_DISCD_H

/*
 * Prepare the environment the harness reads: $DISC_BUILD_DIR (unless set)
 * becomes the build directory this program was built in (its executable
 * is BUILD/benchmarks/NAME), so BUILD/daemon/discd is started; a private
 * directory /dev/shm/discshm-bench-XXXXXX (mode 0755, as the trust checks
 * want) holds the registry ($DISCSHM_DIR = .../reg) and, through $TMPDIR,
 * discd's socket and state directory, so state-file syncs cost no disk
 * I/O. Raises RLIMIT_NOFILE to its hard limit. Returns 0 or -errno.
 */
int bench_discd_env(void);

struct discd_proc;

/*
 * A number in d's reply to `request` (one JSON line, e.g.
 * {"op":"status"}): the one right after the first occurrence of `pat`
 * (e.g. "\"commits\":") that follows the first occurrence of `after`
 * (NULL: anywhere). -1 if there is none. Exits the program with a message
 * if d does not answer within 10 s.
 */
double bench_discd_number(const struct discd_proc *d, const char *request, const char *after,
                          const char *pat);

/* Remove that directory and everything in it (call after every discd has
 * been stopped). */
void bench_discd_env_cleanup(void);

#endif /* DISC_BENCH_DISCD_H */
