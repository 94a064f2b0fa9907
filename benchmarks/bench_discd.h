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

/* Remove that directory and everything in it (call after every discd has
 * been stopped). */
void bench_discd_env_cleanup(void);

#endif /* DISC_BENCH_DISCD_H */
