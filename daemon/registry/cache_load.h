/* SPDX-License-Identifier: MIT */
/*
 * cache_load.h — discd's use of its own file cache at start-up.
 *
 * Started in ZooKeeper mode with --cache-file, discd first publishes the
 * region picture it saved last time (origin CACHE, snapshot flagged
 * DISC_ST_FROM_CACHE), so readers on this host have data at once even when
 * ZooKeeper is unreachable. Once a full sync has completed and the
 * cooling-off period is over, whatever is still of origin CACHE (not
 * re-announced by the region) is dropped and the flag cleared
 * (see zk_bridge.c).
 */
#ifndef DISC_CACHE_LOAD_H
#define DISC_CACHE_LOAD_H

#include "registry.h"

/* Put every instance of the image at `path` whose host is not own_host
 * into the registry as origin CACHE. Returns how many, or -errno (-ENOENT:
 * no cache yet; -EBADMSG: damaged file, ignored). */
int cache_load(struct registry *reg, const char *path, const char *own_host);

/* Remove every instance still of origin CACHE; returns how many. */
int cache_purge(struct registry *reg);

#endif /* DISC_CACHE_LOAD_H */
