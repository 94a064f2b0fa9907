// SPDX-License-Identifier: MIT

// Package discshm reads the discshm service registry with no IPC: a cgo
// layer over libdiscshm, which maps the shared-memory segment that discd
// publishes and answers lookups inside this process.
//
//	reg, err := discshm.Open("")          // $DISCSHM_NAME, else "discshm"
//	if err != nil { ... }
//	defer reg.Close()
//	insts, err := reg.Lookup("payments")  // errors.Is(err, discshm.ErrNotFound)
//	one, err := reg.Pick(&discshm.Filter{Service: "payments"}, discshm.PickHash, []byte("user-42"))
//
// A Registry is safe for concurrent use. See README.md.
package discshm

/*
#include <stdlib.h>
#include <discshm.h>
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Registry is an open registry (a libdiscshm handle).
type Registry struct {
	mu      sync.RWMutex // Close excludes calls in progress
	h       *cHandle
	pickMu  sync.Mutex
	pickers map[PickPolicy]*Picker
}

// Option changes how Open opens a registry.
type Option func(*openOpts)

type openOpts struct {
	flags    C.uint
	path     string
	dir      string
	owner    uint32
	ownerSet bool
}

// WithDir opens the registry in dir instead of the default registry
// directory ($DISCSHM_DIR, else /run/discshm for root).
func WithDir(dir string) Option { return func(o *openOpts) { o.dir = dir } }

// WithOwner expects the registry's directory and objects to be owned by uid
// (default: $DISCSHM_OWNER, else the directory's owner).
func WithOwner(uid uint32) Option {
	return func(o *openOpts) { o.owner, o.ownerSet = uid, true }
}

// WithVerify checks every record's checksum on every read.
func WithVerify() Option { return func(o *openOpts) { o.flags |= openVerify } }

// WithCacheFallback opens discd's file cache when there is no segment.
func WithCacheFallback() Option { return func(o *openOpts) { o.flags |= openCacheFallback } }

// WithFile opens a file-cache image instead of a live registry.
func WithFile(path string) Option { return func(o *openOpts) { o.path = path } }

// Open maps the registry name ("": $DISCSHM_NAME, else "discshm").
func Open(name string, opts ...Option) (*Registry, error) {
	var o openOpts
	for _, f := range opts {
		f(&o)
	}
	var h *cHandle
	var rc C.int
	if o.path != "" {
		p := C.CString(o.path)
		defer C.free(unsafe.Pointer(p))
		rc = C.disc_open_file(p, o.flags, &h)
		if rc < 0 {
			return nil, newError("disc_open_file", rc)
		}
	} else {
		var opts C.struct_disc_open_opts
		if name != "" {
			opts.name = C.CString(name)
			defer C.free(unsafe.Pointer(opts.name))
		}
		if o.dir != "" {
			opts.dir = C.CString(o.dir)
			defer C.free(unsafe.Pointer(opts.dir))
		}
		opts.flags = o.flags
		if o.ownerSet {
			opts.owner, opts.owner_set = C.uint32_t(o.owner), 1
		}
		errbuf := (*C.char)(C.calloc(1, 512))
		defer C.free(unsafe.Pointer(errbuf))
		opts.err, opts.errlen = errbuf, 512
		rc = C.disc_open_ex(&opts, &h)
		if rc < 0 {
			return nil, &Error{Op: "disc_open_ex", Errno: syscall.Errno(-rc),
				Detail: C.GoString(errbuf)}
		}
	}
	r := &Registry{h: h, pickers: map[PickPolicy]*Picker{}}
	runtime.SetFinalizer(r, (*Registry).Close)
	return r, nil
}

// Close unmaps the registry; calls after it return ErrClosed.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h != nil {
		C.disc_close(r.h)
		r.h = nil
		runtime.SetFinalizer(r, nil)
	}
	r.pickMu.Lock()
	for _, p := range r.pickers {
		p.Close()
	}
	r.pickers = nil
	r.pickMu.Unlock()
	return nil
}

// use runs fn with the handle under the read lock.
func (r *Registry) use(fn func(h *cHandle) error) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.h == nil {
		return ErrClosed
	}
	return fn(r.h)
}

// copyout calls a libdiscshm copy-out function with a C buffer, growing it
// on -ENOBUFS, and hands the result to conv while the buffer is alive.
func copyout(op string, call func(buf unsafe.Pointer, size C.size_t, needed *C.size_t) C.int,
	conv func(rc int) error) error {
	size := C.size_t(16 << 10)
	for attempt := 0; attempt < 8; attempt++ {
		buf := C.malloc(size)
		if buf == nil {
			return &Error{Op: op, Errno: syscall.ENOMEM}
		}
		var needed C.size_t
		rc := call(buf, size, &needed)
		if rc == -C.int(syscall.ENOBUFS) {
			C.free(buf)
			size = needed + needed/4 + 1024
			continue
		}
		var err error
		if rc < 0 {
			err = newError(op, rc)
		} else {
			err = conv(int(rc))
		}
		C.free(buf)
		return err
	}
	return &Error{Op: op, Errno: syscall.ENOBUFS}
}

func cString(s string) (*C.char, func()) {
	p := C.CString(s)
	return p, func() { C.free(unsafe.Pointer(p)) }
}

// Lookup returns every instance of service, sorted by id (ErrNotFound if
// the service has none).
func (r *Registry) Lookup(service string) ([]Instance, error) {
	svc, free := cString(service)
	defer free()
	var out []Instance
	err := r.use(func(h *cHandle) error {
		var list *cInstance
		return copyout("disc_lookup", func(b unsafe.Pointer, n C.size_t, need *C.size_t) C.int {
			return C.disc_lookup(h, svc, b, n, &list, need)
		}, func(n int) (err error) {
			out, err = instancesFromC(list, n)
			return err
		})
	})
	return out, err
}

// LookupID returns the instance with this id.
func (r *Registry) LookupID(id string) (Instance, error) {
	cid, free := cString(id)
	defer free()
	var out Instance
	err := r.use(func(h *cHandle) error {
		var inst *cInstance
		return copyout("disc_lookup_id", func(b unsafe.Pointer, n C.size_t, need *C.size_t) C.int {
			return C.disc_lookup_id(h, cid, b, n, &inst, need)
		}, func(int) (err error) {
			out, err = instanceFromC(inst)
			return err
		})
	})
	return out, err
}

// Count returns the number of instances of service (0 if it does not exist).
func (r *Registry) Count(service string) (int, error) {
	svc, free := cString(service)
	defer free()
	n := 0
	err := r.use(func(h *cHandle) error {
		rc := C.disc_count(h, svc)
		if rc < 0 {
			return newError("disc_count", rc)
		}
		n = int(rc)
		return nil
	})
	return n, err
}

// Find returns every instance matching f (nil: all), sorted by service then
// id; an empty slice when nothing matches, ErrNotFound when f.Service names
// no service.
func (r *Registry) Find(f *Filter) ([]Instance, error) {
	cf, err := newCFilter(f)
	if err != nil {
		return nil, err
	}
	defer cf.release()
	var out []Instance
	err = r.use(func(h *cHandle) error {
		var list *cInstance
		return copyout("disc_lookup_filtered",
			func(b unsafe.Pointer, n C.size_t, need *C.size_t) C.int {
				return C.disc_lookup_filtered(h, cf.f, b, n, &list, need)
			}, func(n int) (err error) {
				out, err = instancesFromC(list, n)
				return err
			})
	})
	return out, err
}

// All returns every instance, from one consistent snapshot.
func (r *Registry) All() ([]Instance, error) { return r.Find(nil) }

// Each calls fn for every instance of one consistent snapshot until fn
// returns false.
func (r *Registry) Each(fn func(Instance) bool) error {
	all, err := r.All()
	if err != nil {
		return err
	}
	for _, in := range all {
		if !fn(in) {
			break
		}
	}
	return nil
}

// Picker is a libdiscshm picker (see Pick). Round robin keeps its state in
// the picker: use one per target. Safe for concurrent use.
type Picker struct {
	mu     sync.RWMutex
	p      *cPicker
	policy PickPolicy
}

// NewPicker creates a picker. seed starts the random stream (PickRandom);
// maxCandidates bounds what a round-robin pick may see (0: 1024).
func NewPicker(policy PickPolicy, seed uint64, maxCandidates uint32) (*Picker, error) {
	var p *cPicker
	if rc := C.disc_picker_create(C.enum_disc_pick_policy(policy), C.uint64_t(seed),
		C.uint32_t(maxCandidates), &p); rc < 0 {
		return nil, newError("disc_picker_create", rc)
	}
	pk := &Picker{p: p, policy: policy}
	runtime.SetFinalizer(pk, (*Picker).Close)
	return pk, nil
}

// Policy returns the picker's policy.
func (p *Picker) Policy() PickPolicy { return p.policy }

// Close frees the picker.
func (p *Picker) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p != nil {
		C.disc_picker_destroy(p.p)
		p.p = nil
		runtime.SetFinalizer(p, nil)
	}
	return nil
}

func (r *Registry) picker(policy PickPolicy) (*Picker, error) {
	r.pickMu.Lock()
	defer r.pickMu.Unlock()
	if r.pickers == nil {
		return nil, ErrClosed
	}
	if p := r.pickers[policy]; p != nil {
		return p, nil
	}
	p, err := NewPicker(policy, uint64(time.Now().UnixNano()), 0)
	if err != nil {
		return nil, err
	}
	r.pickers[policy] = p
	return p, nil
}

// Pick chooses one instance among those matching f by weight with the
// registry's picker for policy; key is the consistent-hash key (PickHash
// needs one). ErrNotFound when nothing matches.
func (r *Registry) Pick(f *Filter, policy PickPolicy, key []byte) (Instance, error) {
	p, err := r.picker(policy)
	if err != nil {
		return Instance{}, err
	}
	return r.PickWith(p, f, key)
}

// PickWith is Pick with a picker of your own (e.g. one round-robin picker
// per target).
func (r *Registry) PickWith(p *Picker, f *Filter, key []byte) (Instance, error) {
	cf, err := newCFilter(f)
	if err != nil {
		return Instance{}, err
	}
	defer cf.release()
	var ckey unsafe.Pointer
	if len(key) > 0 {
		ckey = C.CBytes(key)
		defer C.free(ckey)
	} else if p.policy == PickHash {
		return Instance{}, &Error{Op: "disc_pick", Errno: syscall.EINVAL}
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.p == nil {
		return Instance{}, ErrClosed
	}
	var out Instance
	err = r.use(func(h *cHandle) error {
		var inst *cInstance
		return copyout("disc_pick", func(b unsafe.Pointer, n C.size_t, need *C.size_t) C.int {
			return C.disc_pick(h, cf.f, p.p, ckey, C.size_t(len(key)), b, n, &inst, need)
		}, func(int) (err error) {
			out, err = instanceFromC(inst)
			return err
		})
	})
	return out, err
}

// Services lists every service with an instance matching f (nil: all),
// sorted by name, with its versions and instance counts.
func (r *Registry) Services(f *Filter) ([]ServiceSummary, error) {
	cf, err := newCFilter(f)
	if err != nil {
		return nil, err
	}
	defer cf.release()
	var out []ServiceSummary
	err = r.use(func(h *cHandle) error {
		var list *C.struct_disc_service_summary
		return copyout("disc_services", func(b unsafe.Pointer, n C.size_t, need *C.size_t) C.int {
			return C.disc_services(h, cf.f, b, n, &list, need)
		}, func(n int) error {
			out = summariesFromC(list, n)
			return nil
		})
	})
	return out, err
}

// ServiceNames lists every service and its instance count, sorted by name.
func (r *Registry) ServiceNames() ([]ServiceCount, error) {
	var out []ServiceCount
	err := r.use(func(h *cHandle) error {
		var list *C.struct_disc_service_info
		return copyout("disc_list_services",
			func(b unsafe.Pointer, n C.size_t, need *C.size_t) C.int {
				return C.disc_list_services(h, b, n, &list, need)
			}, func(n int) error {
				out = serviceInfosFromC(list, n)
				return nil
			})
	})
	return out, err
}

// Stale returns the staleness bits of the current segment (0: current).
// Cheap (no syscall): call it after a lookup to decide whether to trust it.
func (r *Registry) Stale() (StaleFlags, error) {
	var f StaleFlags
	err := r.use(func(h *cHandle) error {
		rc := C.disc_stale(h)
		if rc < 0 {
			return newError("disc_stale", rc)
		}
		f = StaleFlags(rc)
		return nil
	})
	return f, err
}

// String is the reason's stable name ("none", "writer-stopped", ...).
func (d DegradedReason) String() string {
	return C.GoString(C.disc_status_reason_str(C.uint32_t(d)))
}

// Status returns the segment header as this reader sees it.
func (r *Registry) Status() (Status, error) {
	var st Status
	err := r.use(func(h *cHandle) error {
		var cs C.struct_disc_status
		if rc := C.disc_status(h, &cs); rc < 0 {
			return newError("disc_status", rc)
		}
		st = statusFromC(&cs)
		return nil
	})
	return st, err
}

// waitSlice bounds one blocking C call, so a cancelled context is noticed
// within it.
const waitSlice = 100 * time.Millisecond

// WaitForChange blocks until the registry's change_seq differs from seen
// (a Status.ChangeSeq) and returns the new value. It returns ctx.Err() when
// ctx is done (a deadline gives context.DeadlineExceeded).
func (r *Registry) WaitForChange(ctx context.Context, seen uint32) (uint32, error) {
	word := C.uint32_t(seen)
	for {
		if err := ctx.Err(); err != nil {
			return seen, err
		}
		slice := waitSlice
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left < slice {
				slice = left
			}
			if slice < 0 {
				slice = 0
			}
		}
		var rc C.int
		err := r.use(func(h *cHandle) error {
			rc = C.disc_wait_change(h, &word, C.int(slice/time.Millisecond))
			return nil
		})
		if err != nil {
			return seen, err
		}
		if rc == 0 {
			return uint32(word), nil
		}
		if rc != -C.int(syscall.ETIMEDOUT) {
			return seen, newError("disc_wait_change", rc)
		}
	}
}

// Changes sends the Status after each change until ctx is done, then
// closes the channel. Changes faster than the receiver are coalesced.
func (r *Registry) Changes(ctx context.Context) (<-chan Status, error) {
	st, err := r.Status()
	if err != nil {
		return nil, err
	}
	ch := make(chan Status, 1)
	go func() {
		defer close(ch)
		seen := st.ChangeSeq
		for {
			var err error
			if seen, err = r.WaitForChange(ctx, seen); err != nil {
				return
			}
			st, err := r.Status()
			if err != nil {
				return
			}
			select {
			case ch <- st:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// VersionCmp compares versions as libdiscshm does (<0, 0, >0; "1.10" > "1.9").
func VersionCmp(a, b string) int {
	ca, fa := cString(a)
	defer fa()
	cb, fb := cString(b)
	defer fb()
	return int(C.disc_version_cmp(ca, cb))
}
