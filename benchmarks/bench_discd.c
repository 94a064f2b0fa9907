/* SPDX-License-Identifier: MIT */
/* bench_discd.c — see bench_discd.h. */
#include "bench_discd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "discd_proc.h"
#include "rm_tree.h"

static char top[PATH_MAX]; /* this benchmark process's directory */

int bench_discd_env(void)
{
    if (!getenv("DISC_BUILD_DIR")) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
            return -errno;
        exe[n] = '\0';
        for (int k = 0; k < 2; k++) { /* BUILD/benchmarks/NAME -> BUILD */
            char *slash = strrchr(exe, '/');
            if (!slash)
                return -EINVAL;
            *slash = '\0';
        }
        setenv("DISC_BUILD_DIR", exe, 1);
    }
    snprintf(top, sizeof(top), "/dev/shm/discshm-bench-XXXXXX");
    if (!mkdtemp(top))
        return -errno;
    char reg[PATH_MAX + 8];
    snprintf(reg, sizeof(reg), "%s/reg", top);
    if (chmod(top, 0755) < 0 || mkdir(reg, 0755) < 0 || chmod(reg, 0755) < 0) {
        int rc = -errno;
        bench_discd_env_cleanup();
        return rc;
    }
    setenv("DISCSHM_DIR", reg, 1);
    setenv("TMPDIR", top, 1);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return 0;
}

double bench_discd_number(const struct discd_proc *d, const char *request, const char *after,
                          const char *pat)
{
    char *line = discd_proc_request(d, request, 10000);
    if (!line) {
        fprintf(stderr, "discd did not answer %s\n", request);
        exit(1);
    }
    const char *from = after ? strstr(line, after) : line;
    const char *p = from ? strstr(from, pat) : NULL;
    double v = p ? strtod(p + strlen(pat), NULL) : -1;
    free(line);
    return v;
}

void bench_discd_env_cleanup(void)
{
    if (top[0])
        rm_tree(top);
    top[0] = '\0';
}
