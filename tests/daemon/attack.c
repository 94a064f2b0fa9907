/* SPDX-License-Identifier: MIT */
/*
 * attack.c — what a hostile local user tries against a registry's objects
 * (run by test_daemon_trust under a second uid with setpriv).
 *
 *   attack OP PATH [HOLD_MS]
 *     truncate   truncate(PATH, 0)
 *     overwrite  open O_WRONLY and write 4 KiB of garbage at offset 0
 *     lock       open O_RDONLY and take an OFD read lock on byte 0; hold it
 *                HOLD_MS (default 0)
 *     mkfile     create PATH (O_CREAT | O_EXCL, mode 0666)
 *     mkdir      mkdir PATH
 *     symlink    symlink PATH -> /etc/passwd
 *     unlink     unlink PATH (to replace it)
 *     fill       append to PATH until the file system is full
 *
 * Prints one line and exits with the errno of the first failure (0: the
 * attack succeeded; for fill, ENOSPC is the expected end).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int report(const char *op, const char *path, int e)
{
    printf("attack %s %s (uid %d): %s\n", op, path, (int)getuid(), e ? strerror(e) : "succeeded");
    return e;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: attack OP PATH [HOLD_MS]\n");
        return 100;
    }
    const char *op = argv[1], *path = argv[2];
    int e = 0;
    if (!strcmp(op, "truncate")) {
        e = truncate(path, 0) < 0 ? errno : 0;
    } else if (!strcmp(op, "overwrite")) {
        int fd = open(path, O_WRONLY | O_NOFOLLOW);
        if (fd < 0)
            return report(op, path, errno);
        char junk[4096];
        memset(junk, 0x5a, sizeof(junk));
        e = pwrite(fd, junk, sizeof(junk), 0) < 0 ? errno : 0;
        close(fd);
    } else if (!strcmp(op, "lock")) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW);
        if (fd < 0)
            return report(op, path, errno);
        struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        e = fcntl(fd, F_OFD_SETLK, &fl) < 0 ? errno : 0;
        report(op, path, e);
        fflush(stdout);
        long ms = argc > 3 ? atol(argv[3]) : 0;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        if (!e)
            nanosleep(&ts, NULL);
        return e;
    } else if (!strcmp(op, "mkfile")) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
        e = fd < 0 ? errno : 0;
        if (fd >= 0)
            close(fd);
    } else if (!strcmp(op, "mkdir")) {
        e = mkdir(path, 0777) < 0 ? errno : 0;
    } else if (!strcmp(op, "unlink")) {
        e = unlink(path) < 0 ? errno : 0;
    } else if (!strcmp(op, "symlink")) {
        e = symlink("/etc/passwd", path) < 0 ? errno : 0;
    } else if (!strcmp(op, "fill")) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0)
            return report(op, path, errno);
        static char junk[1 << 16];
        memset(junk, 0x5a, sizeof(junk));
        for (;;) {
            if (write(fd, junk, sizeof(junk)) < 0) {
                e = errno;
                break;
            }
        }
        close(fd);
    } else {
        fprintf(stderr, "attack: unknown op %s\n", op);
        return 100;
    }
    return report(op, path, e);
}
