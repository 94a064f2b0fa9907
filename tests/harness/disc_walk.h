/* SPDX-License-Identifier: MIT */
/*
 * disc_walk.h — call every libdiscshm read API on a handle and check what
 * must hold for any segment bytes: each call returns a count or one of its
 * documented errors, and every string it hands out is NUL-terminated within
 * its DISC_*_MAX. Shared by the concurrent-mutation stress test
 * (tests/stress/test_mutation.c) and the fuzz harness fuzz/fuzz_segment.c.
 */
#ifndef DISC_TEST_WALK_H
#define DISC_TEST_WALK_H

#include <stddef.h>
#include <stdint.h>

#include "discshm.h"

struct disc_walk_stats {
    uint64_t calls;     /* API calls made */
    uint64_t ok;        /* of those, successful (>= 0) */
    uint64_t instances; /* instance views handed out (and checked) */
    char why[256];      /* the violated invariant, when disc_walk_all returns -1 */
};

/*
 * Walk everything: zero-copy (every service, every instance, by name and
 * by id, tags and endpoints), copy-out (lookup, lookup_id, count,
 * list_services), and one of three filters (variant % 3) through
 * lookup_filtered, services, endpoints and all three pickers. buf/len: a
 * scratch buffer (1 MiB is plenty). changing: the segment's bytes may
 * change during the walk (a concurrent-mutation test); zero-copy strings
 * then point at bytes that may have changed since they were validated, so
 * they are only read (they must end inside the mapping), not held to their
 * limits; copy-out results always are. Returns 0, or -1 with st->why set
 * when an invariant is violated.
 */
int disc_walk_all(disc_handle *h, unsigned variant, int changing, void *buf, size_t len,
                  struct disc_walk_stats *st);

#endif /* DISC_TEST_WALK_H */
