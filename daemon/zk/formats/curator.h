/* SPDX-License-Identifier: MIT */
/*
 * curator.h — the Apache Curator x-discovery format's export side: the
 * document discd writes for one of its local instances under
 * <export base>/<service>/<id> so Java ServiceDiscovery clients find it
 * (daemon/zk/export.h does the ZooKeeper work). The import side is
 * fmt_curator (format.h).
 */
#ifndef DISC_FMT_CURATOR_H
#define DISC_FMT_CURATOR_H

#include <jansson.h>
#include <stdint.h>

/*
 * Top-level member that marks a document exported by discd: an object
 * {"host": <discd's host id>, "service": <name>}. Curator's
 * JsonInstanceSerializer ignores unknown members, so Java clients read the
 * document as usual; discd's Curator import skips marked documents (the
 * native tree already carries those instances to every discd).
 */
#define CURATOR_EXPORT_MARK "discshm"

/* One local instance to export. */
struct curator_export {
    const char *service; /* Curator "name" */
    const char *id;      /* discd's instance id: the znode name and "id" */
    const char *host;    /* the address's host part (no brackets for IPv6) */
    unsigned port;       /* 1..65535 */
    int64_t registered_at_ms;
    const char *host_id; /* discd's host id, for the mark */
};

/*
 * The Curator ServiceInstance JSON of e: name, id, address, port, sslPort
 * null, payload null (any Java payload class accepts null), the
 * registration time, serviceType DYNAMIC, uriSpec null, enabled true, and
 * the CURATOR_EXPORT_MARK member. New reference, NULL on out-of-memory.
 */
json_t *curator_export_doc(const struct curator_export *e);

#endif /* DISC_FMT_CURATOR_H */
