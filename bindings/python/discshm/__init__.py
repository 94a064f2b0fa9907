# SPDX-License-Identifier: MIT
"""discshm — read the discshm service registry from Python, with no IPC.

A thin ctypes layer over libdiscshm (the C reader library): every query reads
the shared-memory segment that discd publishes, inside this process, without
a socket or a system call on the lookup path. No compiled extension.

    import discshm
    with discshm.Registry() as reg:            # $DISCSHM_NAME, else "discshm"
        for inst in reg.lookup("payments"):
            print(inst.id, inst.address, inst.weight)
        one = reg.pick("payments", key=b"user-42")   # consistent hash

Errors are DiscError (an OSError carrying the negative-errno's errno and
libdiscshm's message); NotFoundError and WaitTimeout are the ones a caller
usually handles. A Registry may be shared by threads (libdiscshm handles are
thread-safe; every call copies into a buffer of its own); it must not be used
in a child after fork(): open a new one there. See README.md.
"""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import threading
import time
from ctypes import byref, c_char_p, c_size_t, c_uint32, c_void_p
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

from . import _ffi
from ._ffi import lib

__all__ = [
    "DiscError", "NotFoundError", "WaitTimeout", "Health", "Origin", "AddrKind", "PickPolicy",
    "Endpoint", "Instance", "Filter", "ServiceSummary", "Status", "Picker", "Registry",
    "version_cmp", "NOT_CRITICAL", "PASSING_ONLY", "AT_LEAST_WARNING", "MASK_ALL",
    "STALE_WRITER_DEAD", "STALE_DEGRADED", "STALE_FROM_CACHE",
]

# ---- errors ------------------------------------------------------------------


class DiscError(OSError):
    """A libdiscshm call failed. .errno is the errno (positive), .strerror
    libdiscshm's text for it, .call the C function."""

    def __init__(self, err: int, message: str, call: str = ""):
        super().__init__(err, message)
        self.call = call

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno))
        where = f"{self.call}: " if self.call else ""
        return f"{where}{self.strerror} ({name})"


class NotFoundError(DiscError, LookupError):
    """-ENOENT: no such registry, service or instance, or nothing matched."""


class WaitTimeout(DiscError, TimeoutError):
    """-ETIMEDOUT: wait_for_change saw no change in time."""


_BY_ERRNO = {_errno.ENOENT: NotFoundError, _errno.ETIMEDOUT: WaitTimeout}


def _error(rc: int, call: str) -> DiscError:
    msg = lib.disc_strerror(rc)
    text = msg.decode() if msg else f"error {rc}"
    return _BY_ERRNO.get(-rc, DiscError)(-rc, text, call)


def _check(rc: int, call: str) -> int:
    if rc < 0:
        raise _error(rc, call)
    return rc


# ---- values --------------------------------------------------------------------


class Health(enum.IntEnum):
    UNKNOWN = 0
    PASSING = 1
    WARNING = 2
    CRITICAL = 3
    MAINTENANCE = 4  # out of rotation on purpose; its check still runs


class Origin(enum.IntEnum):
    LOCAL = 1   # registered with this host's discd
    REMOTE = 2  # learned from the region (ZooKeeper)
    CACHE = 3   # restored from the file cache, not yet confirmed


class AddrKind(enum.IntEnum):
    TCP = 1
    UNIX = 2


class PickPolicy(enum.IntEnum):
    RANDOM = 1       # weighted random
    ROUND_ROBIN = 2  # smooth weighted round robin (state in the Picker)
    HASH = 3         # weighted rendezvous hashing on a key: same key, same instance


def _bit(h: Health) -> int:
    return 1 << int(h)


NOT_CRITICAL = _bit(Health.UNKNOWN) | _bit(Health.PASSING) | _bit(Health.WARNING)
AT_LEAST_WARNING = _bit(Health.PASSING) | _bit(Health.WARNING)
PASSING_ONLY = _bit(Health.PASSING)
MASK_ALL = NOT_CRITICAL | _bit(Health.CRITICAL) | _bit(Health.MAINTENANCE)


@dataclass(frozen=True)
class Endpoint:
    name: str
    request_type: str
    response_type: str
    mean_us: int  # 0: unknown
    p95_us: int   # 0: unknown


def _s(b: Optional[bytes]) -> str:
    return b.decode("utf-8", "replace") if b else ""


def _enum_table(cls) -> tuple:
    top = max(int(x) for x in cls)
    return tuple(cls(v) if v in cls._value2member_map_ else v for v in range(top + 1))


_HEALTH = _enum_table(Health)
_ORIGIN = _enum_table(Origin)
_ADDR = _enum_table(AddrKind)


def _enum(table: tuple, v: int):
    return table[v] if v < len(table) else v  # a value newer than this binding: the number


class Instance:
    """One instance, as copied out of the registry by the call that returned
    it (it does not change afterwards). Fields are decoded on access from
    that copy, so a lookup costs little more than the C call; tags and
    endpoints are decoded once, on first access."""

    __slots__ = ("_c", "_buf", "_tags", "_eps")

    def __init__(self, view: "_ffi.disc_instance", buf: object):
        self._c = view  # a struct view inside buf, the copy-out buffer of the call
        self._buf = buf
        self._tags: Optional[dict] = None
        self._eps: Optional[tuple] = None

    @property
    def id(self) -> str:
        """Textual UUID."""
        return _s(self._c.id)

    @property
    def service(self) -> str:
        return _s(self._c.service)

    @property
    def version(self) -> str:
        return _s(self._c.version)

    @property
    def host(self) -> str:
        """Host id of the registering host."""
        return _s(self._c.host)

    @property
    def az(self) -> str:
        """Availability zone, may be empty."""
        return _s(self._c.az)

    @property
    def address(self) -> str:
        """host:port ([v6]:port), or an absolute unix-socket path (addr_kind)."""
        return _s(self._c.address)

    @property
    def weight(self) -> int:
        return self._c.weight

    @property
    def addr_kind(self) -> AddrKind:
        return _enum(_ADDR, self._c.addr_kind)

    @property
    def health(self) -> Health:
        return _enum(_HEALTH, self._c.health)

    @property
    def origin(self) -> Origin:
        return _enum(_ORIGIN, self._c.origin)

    @property
    def registered_at_ms(self) -> int:
        """CLOCK_REALTIME milliseconds."""
        return self._c.registered_at_ms

    @property
    def owner_uid(self) -> Optional[int]:
        """The uid that registered the instance (on its own host for remote
        instances); None if unknown."""
        u = self._c.owner_uid
        return None if u == _ffi.DISC_OWNER_UNKNOWN else u

    @property
    def tags(self) -> Mapping[str, str]:
        if self._tags is None:
            tags = {}
            k, v = c_char_p(), c_char_p()
            p = byref(self._c)
            for i in range(self._c.n_tags):
                _check(lib.disc_instance_tag(p, i, byref(k), byref(v)), "disc_instance_tag")
                tags[_s(k.value)] = _s(v.value)
            self._tags = tags
        return self._tags

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        if self._eps is None:
            eps = []
            ep = _ffi.disc_endpoint()
            p = byref(self._c)
            for i in range(self._c.n_endpoints):
                _check(lib.disc_instance_endpoint(p, i, byref(ep)), "disc_instance_endpoint")
                eps.append(Endpoint(_s(ep.name), _s(ep.request_type), _s(ep.response_type),
                                    ep.mean_us, ep.p95_us))
            self._eps = tuple(eps)
        return self._eps

    FIELDS = ("id", "service", "version", "host", "az", "address", "addr_kind", "weight",
              "health", "origin", "registered_at_ms", "owner_uid", "tags", "endpoints")

    def asdict(self) -> dict:
        """Every field, decoded."""
        return {f: getattr(self, f) for f in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instance) and self.asdict() == other.asdict()

    def __hash__(self) -> int:
        return hash((self.id, self.registered_at_ms))

    def __repr__(self) -> str:
        return "Instance(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS) + ")"


@dataclass(frozen=True)
class ServiceSummary:
    name: str
    n_instances: int
    versions: Mapping[str, int]  # version -> instances, in version order


# Status flags (DISC_ST_*).
ST_WRITER_ALIVE = 0x01
ST_RECYCLED = 0x02
ST_ZK_CONFIGURED = 0x04
ST_ZK_CONNECTED = 0x08
ST_DEGRADED = 0x10
ST_FROM_CACHE = 0x20
ST_COOLING_OFF = 0x40
ST_HELD_CHANGES = 0x80
ST_WRITER_STOPPED = 0x100

# Staleness bits (DISC_STALE_*): Registry.stale(), Status.stale.
STALE_WRITER_DEAD = 0x1  # writer dead or stopped: nothing will change any more
STALE_DEGRADED = 0x2     # the writer is cut off from the region (ZooKeeper)
STALE_FROM_CACHE = 0x4   # the snapshot came from the file cache, unconfirmed


@dataclass(frozen=True)
class Status:
    """disc_status: the segment header as this reader sees it."""
    generation: int
    change_seq: int
    flags: int
    abi_major: int
    abi_minor: int
    writer_pid: int
    degraded_reason: int
    heartbeat_age_ms: int
    degraded_since_ms: int
    last_sync_ms: int
    published_at_ms: int
    n_services: int
    n_instances: int
    segment_bytes: int
    used_bytes: int
    overtakes: int
    held_changes: int
    writer_dead_since_ms: int  # CLOCK_REALTIME ms it stopped or last beat; 0 while alive
    writer_dead_after_ms: int  # the heartbeat threshold readers apply
    stale: int                 # STALE_* bits

    @property
    def reason(self) -> str:
        """degraded_reason as a stable name ("none", "writer-stopped", ...)."""
        return _s(lib.disc_status_reason_str(self.degraded_reason))

    @property
    def writer_alive(self) -> bool:
        return bool(self.flags & ST_WRITER_ALIVE)

    @property
    def degraded(self) -> bool:
        """Data may be stale (ZooKeeper or discd down): see degraded_reason."""
        return bool(self.flags & ST_DEGRADED)

    @property
    def zk_connected(self) -> bool:
        return bool(self.flags & ST_ZK_CONNECTED)

    @property
    def from_cache(self) -> bool:
        return bool(self.flags & ST_FROM_CACHE)


_STATUS_FIELDS = [f for f in Status.__dataclass_fields__]


# ---- filters -------------------------------------------------------------------


HealthSpec = Union[int, Health, Iterable[Health], None]


@dataclass
class Filter:
    """Conditions an instance must all meet (AND); unset fields match all.
    health: a mask (NOT_CRITICAL, ...), one Health, or several.
    tags: key -> value, or key -> None for "has the key".
    owners: uids; the instance's owner_uid must be one of them."""
    service: Optional[str] = None
    service_prefix: Optional[str] = None
    version: Optional[str] = None
    min_version: Optional[str] = None
    az: Optional[str] = None
    host: Optional[str] = None
    endpoint: Optional[str] = None
    health: HealthSpec = None
    tags: Mapping[str, Optional[str]] = field(default_factory=dict)
    owners: Iterable[int] = ()

    def _c(self) -> tuple["_ffi.disc_filter", list]:
        """The C filter and the bytes objects it points into (keep both)."""
        f = _ffi.disc_filter()
        lib.disc_filter_init(byref(f))
        keep: list = []

        def b(s: Optional[str]) -> Optional[bytes]:
            if s is None:
                return None
            v = s.encode()
            keep.append(v)
            return v

        f.service, f.service_prefix, f.version = b(self.service), b(self.service_prefix), \
            b(self.version)
        f.min_version, f.az, f.host, f.endpoint = b(self.min_version), b(self.az), b(self.host), \
            b(self.endpoint)
        h = self.health
        if h is None:
            mask = 0
        elif isinstance(h, Health):
            mask = _bit(h)
        elif isinstance(h, int):
            mask = h
        else:
            mask = 0
            for x in h:
                mask |= _bit(Health(x))
        f.health_mask = mask
        for k, v in self.tags.items():
            _check(lib.disc_filter_add_tag(byref(f), b(k), b(v)), "disc_filter_add_tag")
        for uid in self.owners:
            _check(lib.disc_filter_add_owner(byref(f), uid), "disc_filter_add_owner")
        _check(lib.disc_filter_check(byref(f)), "disc_filter_check")
        return f, keep


def _as_filter(flt: Optional[Filter], service: Optional[str], kw: dict) -> Optional[Filter]:
    if flt is not None and (service is not None or kw):
        raise TypeError("give a Filter or keyword conditions, not both")
    if flt is None and (service is not None or kw):
        flt = Filter(service=service, **kw)
    return flt


def version_cmp(a: str, b: str) -> int:
    """Compare versions as libdiscshm does (<0, 0, >0; "1.10" > "1.9")."""
    return lib.disc_version_cmp(a.encode(), b.encode())


# ---- pickers -------------------------------------------------------------------


class Picker:
    """A libdiscshm picker. Round robin keeps state per picker: use one per
    target (service + filter). Thread-safe; not across fork()."""

    def __init__(self, policy: PickPolicy = PickPolicy.RANDOM, seed: Optional[int] = None,
                 max_candidates: int = 0):
        if seed is None:
            seed = time.monotonic_ns() ^ (id(self) << 16)
        p = c_void_p()
        _check(lib.disc_picker_create(int(policy), seed & (2**64 - 1), max_candidates, byref(p)),
               "disc_picker_create")
        self._p: Optional[c_void_p] = p
        self.policy = PickPolicy(policy)

    def close(self) -> None:
        if self._p:
            lib.disc_picker_destroy(self._p)
            self._p = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def __enter__(self) -> "Picker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- the registry --------------------------------------------------------------


class Registry:
    """An open registry (libdiscshm handle, opened with disc_open_ex).

    name: registry name (None: $DISCSHM_NAME, else "discshm").
    dir: registry directory (None: $DISCSHM_DIR, else /run/discshm for root,
        $XDG_RUNTIME_DIR/discshm otherwise).
    owner: uid the registry directory and its objects must belong to (None:
        $DISCSHM_OWNER, else the directory's owner). Anything else is refused
        with a PermissionError-like DiscError (EPERM) naming the path and the
        owners found and expected.
    verify: check every record's checksum on every read (DISC_OPEN_VERIFY).
    cache_fallback: no segment -> open discd's file cache (check status()).
    cache: the file-cache image used by cache_fallback (None: $DISCSHM_CACHE,
        else the default cache directory's <name>.cache).
    path: open a file-cache image instead of a live segment.

    On failure the DiscError's message is libdiscshm's own one-line
    explanation (e.g. "/run/discshm/orders is owned by uid 65534, expected
    uid 0") when it gives one.
    """

    def __init__(self, name: Optional[str] = None, *, dir: Optional[str] = None,
                 owner: Optional[int] = None, verify: bool = False,
                 cache_fallback: bool = False, cache: Optional[str] = None,
                 path: Optional[str] = None):
        flags = (_ffi.DISC_OPEN_VERIFY if verify else 0) | \
            (_ffi.DISC_OPEN_CACHE_FALLBACK if cache_fallback else 0)
        opts = _ffi.disc_open_opts()
        keep = []  # the encoded strings must outlive the call

        def cstr(v: Optional[str]) -> Optional[bytes]:
            if v is None:
                return None
            b = v.encode()
            keep.append(b)
            return b

        opts.name = cstr(name or None)
        opts.flags = flags
        if owner is not None:
            if not 0 <= owner < 0xFFFFFFFF:
                raise ValueError(f"owner must be a uid (0 .. 4294967294), not {owner}")
            opts.owner = owner
            opts.owner_set = 1
        opts.dir = cstr(dir)
        opts.file = cstr(path)
        opts.cache = cstr(cache)
        err = ctypes.create_string_buffer(512)
        opts.err = ctypes.cast(err, c_void_p)
        opts.errlen = len(err)
        h = c_void_p()
        call = "disc_open_file" if path is not None else "disc_open"
        rc = lib.disc_open_ex(byref(opts), byref(h))
        if rc < 0:
            e = _error(rc, call)
            if err.value:
                e.strerror = err.value.decode(errors="replace")
            raise e
        self._h: Optional[c_void_p] = h
        self._tls = threading.local()
        self._pickers: dict = {}
        self._lock = threading.Lock()

    # -- lifetime
    def close(self) -> None:
        """Unmap. No other thread may be inside a call on this registry."""
        with self._lock:
            for p in self._pickers.values():
                p.close()
            self._pickers.clear()
        if self._h:
            lib.disc_close(self._h)
            self._h = None

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_h", None):
                self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def _handle(self) -> c_void_p:
        if not self._h:
            raise ValueError("the registry is closed")
        return self._h

    # -- copy-out plumbing: a fresh buffer per call (the returned objects
    # keep it), sized from what this thread needed before
    def _copyout(self, call: str, fn: Callable[..., int], *args,
                 out_type) -> tuple[int, object, object]:
        out = ctypes.POINTER(out_type)()
        needed = c_size_t(0)
        size = getattr(self._tls, "size", 4096)
        for _ in range(8):
            buf = (ctypes.c_char * size)()
            rc = fn(self._handle(), *args, buf, size, byref(out), byref(needed))
            if rc != -_errno.ENOBUFS:
                return _check(rc, call), out, buf
            size = int(needed.value) + int(needed.value) // 4 + 1024
            self._tls.size = size
        raise _error(-_errno.ENOBUFS, call)

    # -- queries
    def lookup(self, service: str) -> list[Instance]:
        """Every instance of service (NotFoundError if there is none)."""
        n, lst, buf = self._copyout("disc_lookup", lib.disc_lookup, service.encode(),
                                    out_type=_ffi.disc_instance)
        return [Instance(lst[i], buf) for i in range(n)]

    def lookup_id(self, instance_id: str) -> Instance:
        """The instance with this id (NotFoundError if unknown)."""
        _, p, buf = self._copyout("disc_lookup_id", lib.disc_lookup_id, instance_id.encode(),
                                  out_type=_ffi.disc_instance)
        return Instance(p[0], buf)

    def count(self, service: str) -> int:
        """Number of instances of service (0 if it does not exist)."""
        return _check(lib.disc_count(self._handle(), service.encode()), "disc_count")

    def find(self, flt: Optional[Filter] = None, *, service: Optional[str] = None,
             **conditions) -> list[Instance]:
        """Filtered lookup: every instance matching a Filter, or keyword
        conditions (Filter's fields), sorted by service then id. An empty
        list when nothing matches; NotFoundError when `service` names no
        service."""
        flt = _as_filter(flt, service, conditions)
        cf, keep = flt._c() if flt else (None, None)
        n, lst, buf = self._copyout("disc_lookup_filtered", lib.disc_lookup_filtered,
                                    byref(cf) if cf is not None else None,
                                    out_type=_ffi.disc_instance)
        del keep
        return [Instance(lst[i], buf) for i in range(n)]

    def __iter__(self) -> Iterator[Instance]:
        """Every instance, from one consistent snapshot."""
        return iter(self.find())

    def __contains__(self, service: object) -> bool:
        return isinstance(service, str) and self.count(service) > 0

    def pick(self, service: Optional[str] = None, *, filter: Optional[Filter] = None,
             policy: PickPolicy = PickPolicy.RANDOM, key: Union[bytes, str, None] = None,
             picker: Optional[Picker] = None, **conditions) -> Instance:
        """One instance among those matching (service / conditions / filter),
        by weight: random, round robin, or consistent hashing on key (given a
        key the policy defaults to HASH). The registry keeps one picker per
        policy unless you pass your own. NotFoundError if nothing matches."""
        flt = _as_filter(filter, service, conditions)
        if key is not None and picker is None and policy == PickPolicy.RANDOM:
            policy = PickPolicy.HASH
        if picker is None:
            with self._lock:
                picker = self._pickers.get(policy)
                if picker is None:
                    picker = self._pickers[policy] = Picker(policy)
        if picker.policy == PickPolicy.HASH and key is None:
            raise ValueError("a HASH pick needs a key")
        kb = key.encode() if isinstance(key, str) else key
        cf, keep = flt._c() if flt else (None, None)
        _, p, buf = self._copyout("disc_pick", lib.disc_pick,
                                  byref(cf) if cf is not None else None, picker._p, kb,
                                  len(kb) if kb else 0, out_type=_ffi.disc_instance)
        del keep
        return Instance(p[0], buf)

    def services(self, flt: Optional[Filter] = None, **conditions) -> list[ServiceSummary]:
        """Every service with a matching instance, sorted by name, with its
        versions and instance counts."""
        flt = _as_filter(flt, None, conditions)
        cf, keep = flt._c() if flt else (None, None)
        n, lst, _ = self._copyout("disc_services", lib.disc_services,
                               byref(cf) if cf is not None else None,
                               out_type=_ffi.disc_service_summary)
        del keep
        out = []
        for i in range(n):
            s = lst[i]
            versions = {_s(s.versions[j].version): s.versions[j].n_instances
                        for j in range(s.n_versions)}
            out.append(ServiceSummary(_s(s.name), s.n_instances, versions))
        return out

    def stale(self) -> int:
        """STALE_* bits for the current segment (0: current). Cheap (no
        syscall): call it after a lookup to decide whether to trust it."""
        return _check(lib.disc_stale(self._handle()), "disc_stale")

    def status(self) -> Status:
        st = _ffi.disc_status()
        _check(lib.disc_status(self._handle(), byref(st)), "disc_status")
        return Status(**{f: getattr(st, f) for f in _STATUS_FIELDS})

    # -- change notification
    def wait_for_change(self, timeout: Optional[float] = None,
                        seen: Optional[int] = None) -> int:
        """Block until the registry changes after `seen` (a change_seq from
        status() or a previous call; None: now). Returns the new change_seq;
        raises WaitTimeout after timeout seconds (None: wait forever). The
        GIL is released while waiting; signals are handled within 1 s."""
        if seen is None:
            seen = self.status().change_seq
        word = c_uint32(seen)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            rc = lib.disc_wait_change(self._handle(), byref(word), max(0, int(left * 1000)))
            if rc == 0:
                return word.value
            if rc != -_errno.ETIMEDOUT or (deadline is not None
                                           and time.monotonic() >= deadline):
                raise _error(rc, "disc_wait_change")

    def changes(self, timeout: Optional[float] = None) -> Iterator[Status]:
        """Yield the status after each change (changes that come faster than
        the loop are coalesced). Ends with WaitTimeout if none comes within
        timeout seconds."""
        seen = self.status().change_seq
        while True:
            seen = self.wait_for_change(timeout, seen)
            yield self.status()

    def service_names(self) -> Sequence[tuple[str, int]]:
        """(name, instances) of every service, sorted by name."""
        n, lst, _ = self._copyout("disc_list_services", lib.disc_list_services,
                               out_type=_ffi.disc_service_info)
        return [(_s(lst[i].name), lst[i].n_instances) for i in range(n)]
