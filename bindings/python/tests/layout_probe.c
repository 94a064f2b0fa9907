/* SPDX-License-Identifier: MIT */
/*
 * layout_probe.c — prints the compiler's size and field offsets of every
 * struct the Python binding mirrors with ctypes (discshm/_ffi.py), as JSON,
 * for tests/test_layout.py to compare. Built with the project
 * (bindings/python/CMakeLists.txt); not installed.
 */
#include <stddef.h>
#include <stdio.h>

#include "discshm.h"

static int first_struct = 1, first_field;

static void begin(const char *name, size_t size)
{
    printf("%s\"%s\": {\"size\": %zu, \"fields\": {", first_struct ? "" : ", ", name, size);
    first_struct = 0;
    first_field = 1;
}

static void field(const char *name, size_t off)
{
    printf("%s\"%s\": %zu", first_field ? "" : ", ", name, off);
    first_field = 0;
}

static void end(void)
{
    printf("}}");
}

#define S(T)    begin(#T, sizeof(struct T))
#define F(T, f) field(#f, offsetof(struct T, f))

int main(void)
{
    printf("{");
    S(disc_instance);
    F(disc_instance, id), F(disc_instance, service), F(disc_instance, version);
    F(disc_instance, host), F(disc_instance, az), F(disc_instance, address);
    F(disc_instance, weight), F(disc_instance, addr_kind), F(disc_instance, health);
    F(disc_instance, origin), F(disc_instance, n_tags), F(disc_instance, n_endpoints);
    F(disc_instance, registered_at_ms), F(disc_instance, owner_uid);
    F(disc_instance, rec_), F(disc_instance, rec_size_);
    end();
    S(disc_endpoint);
    F(disc_endpoint, name), F(disc_endpoint, request_type), F(disc_endpoint, response_type);
    F(disc_endpoint, mean_us), F(disc_endpoint, p95_us);
    end();
    S(disc_service_info);
    F(disc_service_info, name), F(disc_service_info, n_instances);
    end();
    S(disc_status);
    F(disc_status, generation), F(disc_status, change_seq), F(disc_status, flags);
    F(disc_status, abi_major), F(disc_status, abi_minor), F(disc_status, writer_pid);
    F(disc_status, degraded_reason), F(disc_status, heartbeat_age_ms);
    F(disc_status, degraded_since_ms), F(disc_status, last_sync_ms);
    F(disc_status, published_at_ms), F(disc_status, n_services), F(disc_status, n_instances);
    F(disc_status, segment_bytes), F(disc_status, used_bytes), F(disc_status, overtakes);
    F(disc_status, held_changes), F(disc_status, writer_dead_since_ms);
    F(disc_status, writer_dead_after_ms), F(disc_status, stale);
    end();
    S(disc_tag_match);
    F(disc_tag_match, key), F(disc_tag_match, value);
    end();
    S(disc_filter);
    F(disc_filter, service), F(disc_filter, service_prefix), F(disc_filter, version);
    F(disc_filter, min_version), F(disc_filter, az), F(disc_filter, host);
    F(disc_filter, endpoint), F(disc_filter, health_mask), F(disc_filter, n_tags);
    F(disc_filter, tags), F(disc_filter, n_owners), F(disc_filter, owners);
    end();
    S(disc_version_count);
    F(disc_version_count, version), F(disc_version_count, n_instances);
    end();
    S(disc_service_summary);
    F(disc_service_summary, name), F(disc_service_summary, versions);
    F(disc_service_summary, n_versions), F(disc_service_summary, n_instances);
    end();
    S(disc_open_opts);
    F(disc_open_opts, name), F(disc_open_opts, flags), F(disc_open_opts, owner);
    F(disc_open_opts, owner_set), F(disc_open_opts, dir), F(disc_open_opts, file);
    F(disc_open_opts, cache), F(disc_open_opts, err), F(disc_open_opts, errlen);
    end();
    printf("}\n");
    return 0;
}
