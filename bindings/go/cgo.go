// SPDX-License-Identifier: MIT

package discshm

// The one file that touches C structs: the cgo preamble and the conversions
// between libdiscshm's public structs (include/discshm.h) and Go values. cgo
// reads the layouts from the header itself, so nothing here repeats a C
// layout; when a struct gains a field, only the conversion below changes.

/*
#cgo LDFLAGS: -ldiscshm
#include <stdlib.h>
#include <discshm.h>
*/
import "C"

import (
	"syscall"
	"unsafe"
)

const (
	openVerify        = C.DISC_OPEN_VERIFY
	openCacheFallback = C.DISC_OPEN_CACHE_FALLBACK
	instanceBufMax    = C.DISC_INSTANCE_BUF_MAX
	filterTagsMax     = C.DISC_FILTER_TAGS_MAX
)

type (
	cHandle   = C.disc_handle
	cPicker   = C.disc_picker
	cInstance = C.struct_disc_instance
)

func goStr(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// instanceFromC copies one C view (valid now) into a Go value.
func instanceFromC(c *C.struct_disc_instance) (Instance, error) {
	in := Instance{
		ID:             goStr(c.id),
		Service:        goStr(c.service),
		Version:        goStr(c.version),
		Host:           goStr(c.host),
		AZ:             goStr(c.az),
		Address:        goStr(c.address),
		AddrKind:       AddrKind(c.addr_kind),
		Weight:         uint32(c.weight),
		Health:         Health(c.health),
		Origin:         Origin(c.origin),
		RegisteredAtMs: int64(c.registered_at_ms),
		OwnerUID:       uint32(c.owner_uid),
	}
	if c.n_tags > 0 {
		in.Tags = make(map[string]string, int(c.n_tags))
		var k, v *C.char
		for i := 0; i < int(c.n_tags); i++ {
			if rc := C.disc_instance_tag(c, C.uint(i), &k, &v); rc < 0 {
				return Instance{}, newError("disc_instance_tag", rc)
			}
			in.Tags[goStr(k)] = goStr(v)
		}
	}
	for i := 0; i < int(c.n_endpoints); i++ {
		var ep C.struct_disc_endpoint
		if rc := C.disc_instance_endpoint(c, C.uint(i), &ep); rc < 0 {
			return Instance{}, newError("disc_instance_endpoint", rc)
		}
		in.Endpoints = append(in.Endpoints, Endpoint{
			Name: goStr(ep.name), RequestType: goStr(ep.request_type),
			ResponseType: goStr(ep.response_type), MeanUs: uint32(ep.mean_us),
			P95Us: uint32(ep.p95_us),
		})
	}
	return in, nil
}

// instancesFromC converts n views laid out as an array at list.
func instancesFromC(list *C.struct_disc_instance, n int) ([]Instance, error) {
	views := unsafe.Slice(list, n)
	out := make([]Instance, 0, n)
	for i := range views {
		in, err := instanceFromC(&views[i])
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func statusFromC(s *C.struct_disc_status) Status {
	return Status{
		Generation:      uint64(s.generation),
		ChangeSeq:       uint32(s.change_seq),
		Flags:           StatusFlags(s.flags),
		ABIMajor:        uint32(s.abi_major),
		ABIMinor:        uint32(s.abi_minor),
		WriterPID:       int(s.writer_pid),
		DegradedReason:  DegradedReason(s.degraded_reason),
		HeartbeatAgeMs:  int64(s.heartbeat_age_ms),
		DegradedSinceMs: int64(s.degraded_since_ms),
		LastSyncMs:      int64(s.last_sync_ms),
		PublishedAtMs:   int64(s.published_at_ms),
		Services:        uint32(s.n_services),
		Instances:       uint32(s.n_instances),
		SegmentBytes:    uint64(s.segment_bytes),
		UsedBytes:       uint64(s.used_bytes),
		Overtakes:       uint64(s.overtakes),
		HeldChanges:     uint32(s.held_changes),

		WriterDeadSinceMs: int64(s.writer_dead_since_ms),
		WriterDeadAfterMs: uint32(s.writer_dead_after_ms),
		Stale:             StaleFlags(s.stale),
	}
}

func summariesFromC(list *C.struct_disc_service_summary, n int) []ServiceSummary {
	out := make([]ServiceSummary, 0, n)
	for _, s := range unsafe.Slice(list, n) {
		sum := ServiceSummary{Name: goStr(s.name), Instances: uint32(s.n_instances)}
		for _, v := range unsafe.Slice(s.versions, int(s.n_versions)) {
			sum.Versions = append(sum.Versions, VersionCount{goStr(v.version),
				uint32(v.n_instances)})
		}
		out = append(out, sum)
	}
	return out
}

func serviceInfosFromC(list *C.struct_disc_service_info, n int) []ServiceCount {
	out := make([]ServiceCount, 0, n)
	for _, s := range unsafe.Slice(list, n) {
		out = append(out, ServiceCount{goStr(s.name), uint32(s.n_instances)})
	}
	return out
}

// cFilter is a C filter in C memory (so the pointer handed to C holds no Go
// pointers) and the C strings it points to. Free with release().
type cFilter struct {
	f    *C.struct_disc_filter // nil for a nil Filter
	strs []*C.char
}

func (cf *cFilter) cstr(s string) *C.char {
	p := C.CString(s)
	cf.strs = append(cf.strs, p)
	return p
}

// opt: "" is unset (NULL).
func (cf *cFilter) opt(s string) *C.char {
	if s == "" {
		return nil
	}
	return cf.cstr(s)
}

func (cf *cFilter) release() {
	for _, p := range cf.strs {
		C.free(unsafe.Pointer(p))
	}
	cf.strs = nil
	if cf.f != nil {
		C.free(unsafe.Pointer(cf.f))
		cf.f = nil
	}
}

// newCFilter builds the C filter for f (a nil Filter gives a NULL filter)
// and validates it with disc_filter_check.
func newCFilter(f *Filter) (*cFilter, error) {
	cf := &cFilter{}
	if f == nil {
		return cf, nil
	}
	cf.f = (*C.struct_disc_filter)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_disc_filter{}))))
	if cf.f == nil {
		return nil, &Error{Op: "calloc", Errno: syscall.ENOMEM}
	}
	C.disc_filter_init(cf.f)
	cf.f.service = cf.opt(f.Service)
	cf.f.service_prefix = cf.opt(f.ServicePrefix)
	cf.f.version = cf.opt(f.Version)
	cf.f.min_version = cf.opt(f.MinVersion)
	if f.AZ != nil {
		cf.f.az = cf.cstr(*f.AZ)
	}
	cf.f.host = cf.opt(f.Host)
	cf.f.endpoint = cf.opt(f.Endpoint)
	cf.f.health_mask = C.uint32_t(f.Health)
	for _, t := range f.Tags {
		var v *C.char
		if t.Value != nil {
			v = cf.cstr(*t.Value)
		}
		if rc := C.disc_filter_add_tag(cf.f, cf.cstr(t.Key), v); rc < 0 {
			cf.release()
			return nil, newError("disc_filter_add_tag", rc)
		}
	}
	for _, uid := range f.Owners {
		if rc := C.disc_filter_add_owner(cf.f, C.uint32_t(uid)); rc < 0 {
			cf.release()
			return nil, newError("disc_filter_add_owner", rc)
		}
	}
	if rc := C.disc_filter_check(cf.f); rc < 0 {
		cf.release()
		return nil, newError("disc_filter_check", rc)
	}
	return cf, nil
}
