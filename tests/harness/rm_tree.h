/* SPDX-License-Identifier: MIT */
/*
 * rm_tree.h — remove a directory tree (rm -rf without following links),
 * for the test and benchmark helpers that clean up the private directories
 * they made (registry directories, ZooKeeper data). Header-only so that
 * every test executable can use it without linking the harness library.
 */
#ifndef DISC_TEST_RM_TREE_H
#define DISC_TEST_RM_TREE_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>

static inline int rm_tree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path); /* a file, or a directory emptied first (FTW_DEPTH) */
    return 0;
}

/* Remove path and everything below it (best effort: an entry that cannot
 * be removed is left). 0, or -errno if path cannot be walked (-ENOENT: it
 * does not exist). */
static inline int rm_tree(const char *path)
{
    return nftw(path, rm_tree_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}

#endif /* DISC_TEST_RM_TREE_H */
