# SPDX-License-Identifier: MIT
"""ctypes declarations of libdiscshm (include/discshm.h).

This module is the ONE place that mirrors C layouts: the public structs the
binding must fill in or read (instance views, endpoints, status, filters,
service summaries). Everything else goes through functions. When a struct in
discshm.h changes, change it here; tests/test_layout.py compares every
mirror with the compiler's sizeof/offsetof (printed by layout_probe, built
with the project) and fails on any difference.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (POINTER, Structure, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint,
                    c_uint8, c_uint16, c_uint32, c_uint64, c_void_p)

LIBRARY_ENV = "DISCSHM_LIBRARY"

# Limits and constants (discshm.h).
DISC_ID_LEN = 36
DISC_FILTER_TAGS_MAX = 8
DISC_FILTER_OWNERS_MAX = 8
DISC_OWNER_UNKNOWN = 0xFFFFFFFF
DISC_INSTANCE_BUF_MAX = 65536 + 256
DISC_OPEN_VERIFY = 0x1
DISC_OPEN_CACHE_FALLBACK = 0x2


class disc_instance(Structure):
    _fields_ = [
        ("id", c_char_p),
        ("service", c_char_p),
        ("version", c_char_p),
        ("host", c_char_p),
        ("az", c_char_p),
        ("address", c_char_p),
        ("weight", c_uint32),
        ("addr_kind", c_uint8),
        ("health", c_uint8),
        ("origin", c_uint8),
        ("reserved_", c_uint8),
        ("n_tags", c_uint16),
        ("n_endpoints", c_uint16),
        ("registered_at_ms", c_int64),
        ("owner_uid", c_uint32),
        ("reserved2_", c_uint32),
        ("rec_", c_void_p),
        ("rec_size_", c_uint32),
        ("rec_pad_", c_uint32),
    ]


class disc_endpoint(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("request_type", c_char_p),
        ("response_type", c_char_p),
        ("mean_us", c_uint32),
        ("p95_us", c_uint32),
    ]


class disc_service_info(Structure):
    _fields_ = [("name", c_char_p), ("n_instances", c_uint32), ("reserved_", c_uint32)]


class disc_status(Structure):
    _fields_ = [
        ("generation", c_uint64),
        ("change_seq", c_uint32),
        ("flags", c_uint32),
        ("abi_major", c_uint32),
        ("abi_minor", c_uint32),
        ("writer_pid", c_int32),
        ("degraded_reason", c_uint32),
        ("heartbeat_age_ms", c_int64),
        ("degraded_since_ms", c_int64),
        ("last_sync_ms", c_int64),
        ("published_at_ms", c_int64),
        ("n_services", c_uint32),
        ("n_instances", c_uint32),
        ("segment_bytes", c_uint64),
        ("used_bytes", c_uint64),
        ("overtakes", c_uint64),
        ("held_changes", c_uint32),
        ("reserved_", c_uint32),
        ("writer_dead_since_ms", c_int64),
        ("writer_dead_after_ms", c_uint32),
        ("stale", c_uint32),
    ]


class disc_tag_match(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class disc_filter(Structure):
    _fields_ = [
        ("service", c_char_p),
        ("service_prefix", c_char_p),
        ("version", c_char_p),
        ("min_version", c_char_p),
        ("az", c_char_p),
        ("host", c_char_p),
        ("endpoint", c_char_p),
        ("health_mask", c_uint32),
        ("n_tags", c_uint32),
        ("tags", disc_tag_match * DISC_FILTER_TAGS_MAX),
        ("n_owners", c_uint32),
        ("owners", c_uint32 * DISC_FILTER_OWNERS_MAX),
    ]


class disc_version_count(Structure):
    _fields_ = [("version", c_char_p), ("n_instances", c_uint32), ("reserved_", c_uint32)]


class disc_service_summary(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("versions", POINTER(disc_version_count)),
        ("n_versions", c_uint32),
        ("n_instances", c_uint32),
    ]


class disc_open_opts(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("flags", c_uint),
        ("owner", c_uint32),
        ("owner_set", c_uint32),
        ("reserved_", c_uint32),
        ("dir", c_char_p),
        ("file", c_char_p),
        ("cache", c_char_p),
        ("err", c_void_p),
        ("errlen", c_size_t),
    ]


# Every mirrored struct, by C name (tests/test_layout.py checks them all).
MIRRORS = {
    "disc_instance": disc_instance,
    "disc_endpoint": disc_endpoint,
    "disc_service_info": disc_service_info,
    "disc_status": disc_status,
    "disc_tag_match": disc_tag_match,
    "disc_filter": disc_filter,
    "disc_version_count": disc_version_count,
    "disc_service_summary": disc_service_summary,
    "disc_open_opts": disc_open_opts,
}

_handle_p = c_void_p
_picker_p = c_void_p
_inst_pp = POINTER(POINTER(disc_instance))

# name: (restype, argtypes)
_PROTOTYPES = {
    "disc_open": (c_int, [c_char_p, c_uint, POINTER(_handle_p)]),
    "disc_open_file": (c_int, [c_char_p, c_uint, POINTER(_handle_p)]),
    "disc_open_ex": (c_int, [POINTER(disc_open_opts), POINTER(_handle_p)]),
    "disc_close": (None, [_handle_p]),
    "disc_lookup": (c_int, [_handle_p, c_char_p, c_void_p, c_size_t, _inst_pp,
                            POINTER(c_size_t)]),
    "disc_lookup_id": (c_int, [_handle_p, c_char_p, c_void_p, c_size_t, _inst_pp,
                               POINTER(c_size_t)]),
    "disc_count": (c_int, [_handle_p, c_char_p]),
    "disc_list_services": (c_int, [_handle_p, c_void_p, c_size_t,
                                   POINTER(POINTER(disc_service_info)), POINTER(c_size_t)]),
    "disc_status": (c_int, [_handle_p, POINTER(disc_status)]),
    "disc_wait_change": (c_int, [_handle_p, POINTER(c_uint32), c_int]),
    "disc_stale": (c_int, [_handle_p]),
    "disc_status_reason_str": (c_char_p, [c_uint32]),
    "disc_strerror": (c_char_p, [c_int]),
    "disc_instance_tag": (c_int, [POINTER(disc_instance), c_uint, POINTER(c_char_p),
                                  POINTER(c_char_p)]),
    "disc_instance_endpoint": (c_int, [POINTER(disc_instance), c_uint, POINTER(disc_endpoint)]),
    "disc_filter_init": (None, [POINTER(disc_filter)]),
    "disc_filter_add_tag": (c_int, [POINTER(disc_filter), c_char_p, c_char_p]),
    "disc_filter_add_owner": (c_int, [POINTER(disc_filter), c_uint32]),
    "disc_filter_check": (c_int, [POINTER(disc_filter)]),
    "disc_version_cmp": (c_int, [c_char_p, c_char_p]),
    "disc_lookup_filtered": (c_int, [_handle_p, POINTER(disc_filter), c_void_p, c_size_t, _inst_pp,
                                     POINTER(c_size_t)]),
    "disc_picker_create": (c_int, [c_int, c_uint64, c_uint32, POINTER(_picker_p)]),
    "disc_picker_destroy": (None, [_picker_p]),
    "disc_pick": (c_int, [_handle_p, POINTER(disc_filter), _picker_p, c_void_p, c_size_t,
                          c_void_p, c_size_t, _inst_pp, POINTER(c_size_t)]),
    "disc_services": (c_int, [_handle_p, POINTER(disc_filter), c_void_p, c_size_t,
                              POINTER(POINTER(disc_service_summary)), POINTER(c_size_t)]),
}


def _load() -> ctypes.CDLL:
    """libdiscshm: $DISCSHM_LIBRARY (a path), else the system's libdiscshm."""
    path = os.environ.get(LIBRARY_ENV)
    candidates = [path] if path else []
    if not path:
        found = ctypes.util.find_library("discshm")
        candidates += [found] if found else []
        candidates += ["libdiscshm.so", "libdiscshm.so.1", "libdiscshm.so.0"]
    errors = []
    for c in candidates:
        try:
            return ctypes.CDLL(c, use_errno=False)
        except OSError as e:
            errors.append(f"{c}: {e}")
    raise ImportError("cannot load libdiscshm (set $" + LIBRARY_ENV + " to its path): "
                      + "; ".join(errors))


lib = _load()
for _name, (_res, _args) in _PROTOTYPES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args
