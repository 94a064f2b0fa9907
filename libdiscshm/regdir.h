/* SPDX-License-Identifier: MIT */
/*
 * regdir.h — where a registry's objects live and when a reader may trust
 * them (internal; shared by libdiscshm and the writer library discpub).
 *
 * A registry directory holds <name> (data) and <name>.lock. It must be a
 * real directory (not a symlink) owned by the expected uid and not
 * writable by group or others, inside a directory owned by root or by the
 * expected uid that group and others cannot write either. Then only the
 * expected uid (and root) can create, rename, replace or remove names in
 * it. Every object opened in it must be a regular file (opened with
 * O_NOFOLLOW) owned by the expected uid and not writable by group or
 * others. Violations are -EPERM with a message naming the path, the owner
 * found and the owner expected.
 */
#ifndef DISCSHM_REGDIR_H
#define DISCSHM_REGDIR_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "discshm.h"

/* Registry names: [A-Za-z0-9._-], not starting with '.', not ending in
 * ".lock" (that is the lock object of another name), at most 200 bytes. */
static inline int disc__name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 200 || name[0] == '.')
        return 0;
    if (n >= 5 && strcmp(name + n - 5, ".lock") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

__attribute__((format(printf, 3, 4))) static inline void disc__msg(char *err, size_t len,
                                                                   const char *fmt, ...)
{
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/*
 * Candidate registry directory i (0, 1, ...) into buf; 0 when there is no
 * candidate i. $DISCSHM_DIR if set is the only one. Otherwise root uses
 * DISC_SYSTEM_DIR; other users $XDG_RUNTIME_DIR/discshm (their own
 * registry, when set) and then DISC_SYSTEM_DIR. A writer uses candidate 0.
 */
static inline int disc__dir_candidate(int i, char *buf, size_t len)
{
    const char *env = getenv(DISC_DIR_ENV);
    if (env && *env)
        return i == 0 && snprintf(buf, len, "%s", env) < (int)len;
    const char *xdg = geteuid() != 0 ? getenv("XDG_RUNTIME_DIR") : NULL;
    if (xdg && *xdg == '/') {
        if (i == 0)
            return snprintf(buf, len, "%s/" DISC_USER_SUBDIR, xdg) < (int)len;
        i--;
    }
    return i == 0 && snprintf(buf, len, "%s", DISC_SYSTEM_DIR) < (int)len;
}

/* The expected owner from $DISCSHM_OWNER: 1 and *uid if set, 0 if not,
 * -EINVAL if it is not a decimal uid. */
static inline int disc__owner_env(uint32_t *uid)
{
    const char *env = getenv(DISC_OWNER_ENV);
    if (!env || !*env)
        return 0;
    char *end;
    unsigned long v = strtoul(env, &end, 10);
    if (*end || v > UINT32_MAX - 1 || *env < '0' || *env > '9')
        return -EINVAL;
    *uid = (uint32_t)v;
    return 1;
}

/*
 * Open the registry directory `path` (O_NOFOLLOW) and check it and its
 * parent. *owner is the expected uid when owner_set, else it becomes the
 * directory's owner. Returns the directory fd, -ENOENT, -EPERM (message in
 * err) or another -errno.
 */
static inline int disc__open_dir(const char *path, uint32_t *owner, int owner_set, char *err,
                                 size_t errlen)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat lst;
        if (e == ELOOP || e == ENOTDIR) {
            int link = e == ELOOP || (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode));
            disc__msg(err, errlen, "registry directory %s is %s", path,
                      link ? "a symbolic link" : "not a directory");
            return -EPERM;
        }
        disc__msg(err, errlen, "registry directory %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st, pst;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (!owner_set)
        *owner = (uint32_t)st.st_uid;
    int rc = 0;
    if ((uint32_t)st.st_uid != *owner) {
        disc__msg(err, errlen, "registry directory %s is owned by uid %u, expected uid %u", path,
                  (unsigned)st.st_uid, (unsigned)*owner);
        rc = -EPERM;
    } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        disc__msg(err, errlen,
                  "registry directory %s (owner uid %u) is writable by group or others "
                  "(mode %04o)",
                  path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        rc = -EPERM;
    } else {
        int pfd = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0 || fstat(pfd, &pst) < 0) {
            rc = -errno;
            disc__msg(err, errlen, "the directory holding %s: %s", path, strerror(-rc));
        } else if (pst.st_uid != 0 && (uint32_t)pst.st_uid != *owner) {
            disc__msg(err, errlen,
                      "the directory holding registry directory %s is owned by uid %u (must be "
                      "root or uid %u)",
                      path, (unsigned)pst.st_uid, (unsigned)*owner);
            rc = -EPERM;
        } else if (pst.st_mode & (S_IWGRP | S_IWOTH)) {
            disc__msg(err, errlen,
                      "the directory holding registry directory %s (owner uid %u) is writable by "
                      "group or others (mode %04o)",
                      path, (unsigned)pst.st_uid, (unsigned)(pst.st_mode & 07777));
            rc = -EPERM;
        }
        if (pfd >= 0)
            close(pfd);
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Check an opened object: a regular file owned by `owner`, not writable by
 * group or others. 0 or -EPERM (message in err, naming `path`). */
static inline int disc__check_obj(int fd, const char *path, uint32_t owner, char *err,
                                  size_t errlen, struct stat *st)
{
    if (fstat(fd, st) < 0) {
        int e = errno;
        disc__msg(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st->st_mode)) {
        disc__msg(err, errlen, "%s is not a regular file (owner uid %u)", path,
                  (unsigned)st->st_uid);
        return -EPERM;
    }
    if ((uint32_t)st->st_uid != owner) {
        disc__msg(err, errlen, "%s is owned by uid %u, expected uid %u", path, (unsigned)st->st_uid,
                  (unsigned)owner);
        return -EPERM;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        disc__msg(err, errlen, "%s (owner uid %u) is writable by group or others (mode %04o)", path,
                  (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

/* openat(dirfd, name) read-only without following a symlink, then
 * disc__check_obj. Returns the fd or -errno (-EPERM for a symlink). */
static inline int disc__open_obj(int dirfd, const char *dir, const char *name, uint32_t owner,
                                 char *err, size_t errlen, struct stat *st)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP) {
            disc__msg(err, errlen, "%s is a symbolic link", path);
            return -EPERM;
        }
        disc__msg(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    int rc = disc__check_obj(fd, path, owner, err, errlen, st);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

#endif /* DISCSHM_REGDIR_H */
