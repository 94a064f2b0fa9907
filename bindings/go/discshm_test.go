// SPDX-License-Identifier: MIT

package discshm

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	d   *discd
	ids = map[string]string{}
)

func TestMain(m *testing.M) {
	removeDir, err := setRegistryDir()
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	if d, err = startDiscd("gobind"); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		removeDir()
		os.Exit(1)
	}
	code := m.Run()
	if rc := d.stop(); rc != 0 && code == 0 {
		os.Stderr.WriteString("discd did not exit 0:\n" + d.logText())
		code = 1
	}
	d.cleanup()
	removeDir()
	os.Exit(code)
}

// populated registers (once) the population the tests check against and
// opens the registry.
var popOnce sync.Once

func populated(t *testing.T) *Registry {
	t.Helper()
	popOnce.Do(func() {
		ids["pay1"] = d.register(t, "pay", "127.0.0.1:7101", "--version", "1.2", "--tag",
			"env=prod", "--tag", "team=core", "--endpoint",
			"Get,request=GetReq,response=Payment,mean_us=120,p95_us=900")
		ids["pay2"] = d.register(t, "pay", "127.0.0.1:7102", "--version", "1.10", "--weight",
			"30", "--tag", "env=prod")
		ids["pay3"] = d.register(t, "pay", "127.0.0.1:7103", "--version", "2.0-rc.1",
			"--weight", "20", "--az", "eu-1", "--tag", "env=staging")
		ids["payroll"] = d.register(t, "payroll", "127.0.0.1:7201", "--version", "1")
		ids["orders"] = d.register(t, "orders", "/run/orders.sock", "--network", "unix")
	})
	r, err := Open(d.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := r.Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Instances >= 5 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("registrations not published: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func idsOf(in []Instance) []string {
	out := []string{}
	for _, i := range in {
		out = append(out, i.ID)
	}
	return out
}

func sorted(s ...string) []string {
	sort.Strings(s)
	return s
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLookupMatchesDiscctl(t *testing.T) {
	r := populated(t)
	got, err := r.Lookup("pay")
	if err != nil {
		t.Fatal(err)
	}
	if want := sorted(ids["pay1"], ids["pay2"], ids["pay3"]); !equal(idsOf(got), want) {
		t.Fatalf("ids %v, want %v", idsOf(got), want)
	}
	var ctl struct {
		Instances []struct {
			ID, Service, Version, Host, Address string
			AZ                                  string `json:"az"`
			Weight                              uint32
		}
	}
	d.ctlJSON(t, &ctl, "get", "pay")
	byID := map[string]Instance{}
	for _, i := range got {
		byID[i.ID] = i
	}
	for _, w := range ctl.Instances {
		g := byID[w.ID]
		if g.Service != w.Service || g.Version != w.Version || g.Address != w.Address ||
			g.Weight != w.Weight || g.Host != w.Host || g.AZ != w.AZ {
			t.Errorf("instance %s: binding %+v, discctl %+v", w.ID, g, w)
		}
		if g.OwnerUID != uint32(os.Getuid()) {
			t.Errorf("instance %s: owner %d, registered by uid %d", w.ID, g.OwnerUID, os.Getuid())
		}
		if g.Origin != OriginLocal || g.Health != HealthPassing || g.AddrKind != AddrTCP {
			t.Errorf("instance %s: origin %v health %v kind %v", w.ID, g.Origin, g.Health,
				g.AddrKind)
		}
	}
	p1 := byID[ids["pay1"]]
	if len(p1.Tags) != 2 || p1.Tags["env"] != "prod" || p1.Tags["team"] != "core" {
		t.Errorf("tags %v", p1.Tags)
	}
	want := Endpoint{"Get", "GetReq", "Payment", 120, 900}
	if len(p1.Endpoints) != 1 || p1.Endpoints[0] != want {
		t.Errorf("endpoints %+v", p1.Endpoints)
	}
	o, err := r.LookupID(ids["orders"])
	if err != nil || o.AddrKind != AddrUnix || o.AddrKind.Network() != "unix" ||
		o.Address != "/run/orders.sock" {
		t.Errorf("LookupID orders: %+v %v", o, err)
	}
	if n, err := r.Count("pay"); n != 3 || err != nil {
		t.Errorf("Count pay = %d, %v", n, err)
	}
	if n, err := r.Count("nothing"); n != 0 || err != nil {
		t.Errorf("Count nothing = %d, %v", n, err)
	}
}

func TestErrors(t *testing.T) {
	r := populated(t)
	_, err := r.Lookup("nothing")
	var de *Error
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &de) ||
		de.Op != "disc_lookup" || de.Errno != syscall.ENOENT {
		t.Fatalf("Lookup(nothing) = %v", err)
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	if _, err := r.Lookup(string(long)); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("long name: %v", err)
	}
	f := &Filter{}
	for i := 0; i < 9; i++ {
		f.Tags = append(f.Tags, Tag(string(rune('a'+i)), "v"))
	}
	if _, err := r.Find(f); !errors.Is(err, syscall.E2BIG) {
		t.Errorf("9 tags: %v", err)
	}
	if _, err := r.Find(&Filter{Health: 1 << 9}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("bad health mask: %v", err)
	}
	if _, err := Open("no-such-registry-here"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open missing: %v", err)
	}
	r2, err := Open(d.name)
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
	if _, err := r2.Lookup("pay"); err != ErrClosed {
		t.Errorf("after Close: %v", err)
	}
}

func TestFind(t *testing.T) {
	r := populated(t)
	eu := "eu-1"
	cases := []struct {
		f    *Filter
		want []string
	}{
		{&Filter{Service: "pay", MinVersion: "1.3"}, sorted(ids["pay2"], ids["pay3"])},
		{&Filter{Service: "pay", Tags: []TagMatch{Tag("env", "prod")}},
			sorted(ids["pay1"], ids["pay2"])},
		{&Filter{Service: "pay", Tags: []TagMatch{HasTag("team")}}, []string{ids["pay1"]}},
		{&Filter{Service: "pay", AZ: &eu}, []string{ids["pay3"]}},
		{&Filter{Service: "pay", Endpoint: "Get"}, []string{ids["pay1"]}},
		{&Filter{ServicePrefix: "pay"},
			sorted(ids["pay1"], ids["pay2"], ids["pay3"], ids["payroll"])},
		{&Filter{Service: "pay", Health: HealthBit(HealthCritical)}, []string{}},
		{&Filter{Service: "pay", Owners: []uint32{uint32(os.Getuid())}},
			sorted(ids["pay1"], ids["pay2"], ids["pay3"])},
		{&Filter{Service: "pay", Owners: []uint32{uint32(os.Getuid()) + 1}}, []string{}},
		{&Filter{Service: "pay", Health: NotCritical},
			sorted(ids["pay1"], ids["pay2"], ids["pay3"])},
	}
	for i, c := range cases {
		got, err := r.Find(c.f)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		ids := idsOf(got)
		sort.Strings(ids)
		if !equal(ids, c.want) {
			t.Errorf("case %d %+v: %v, want %v", i, c.f, ids, c.want)
		}
	}
	if _, err := r.Find(&Filter{Service: "nothing"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown service: %v", err)
	}
	// Iteration: the whole registry, as discctl dump sees it.
	var dump struct{ Instances []struct{ ID string } }
	d.ctlJSON(t, &dump, "dump")
	want := []string{}
	for _, i := range dump.Instances {
		want = append(want, i.ID)
	}
	got := []string{}
	if err := r.Each(func(i Instance) bool { got = append(got, i.ID); return true }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if !equal(got, sorted(want...)) {
		t.Errorf("Each: %v, dump %v", got, want)
	}
}

func TestServicesAndStatus(t *testing.T) {
	r := populated(t)
	s, err := r.Services(nil)
	if err != nil || len(s) < 3 || s[0].Name != "orders" || s[1].Name != "pay" {
		t.Fatalf("Services: %+v %v", s, err)
	}
	vs := s[1].Versions
	if s[1].Instances != 3 || len(vs) != 3 || vs[0].Version != "1.2" || vs[1].Version != "1.10" ||
		vs[2].Version != "2.0-rc.1" {
		t.Errorf("pay versions: %+v", s[1])
	}
	names, err := r.ServiceNames()
	if err != nil || names[0] != (ServiceCount{"orders", 1}) {
		t.Errorf("ServiceNames: %+v %v", names, err)
	}
	st, err := r.Status()
	if err != nil || st.WriterPID != d.cmd.Process.Pid || !st.WriterAlive() || st.Degraded() ||
		st.Generation < 2 || st.SegmentBytes < st.UsedBytes || st.UsedBytes == 0 {
		t.Errorf("Status: %+v %v", st, err)
	}
	if VersionCmp("1.10", "1.9") <= 0 || VersionCmp("2.0-rc.1", "2.0") >= 0 {
		t.Error("VersionCmp")
	}
}

func TestPick(t *testing.T) {
	r := populated(t)
	for _, key := range []string{"user-1", "user-2", "user-3"} {
		a, err := r.Pick(&Filter{Service: "pay"}, PickHash, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := r.Pick(&Filter{Service: "pay"}, PickHash, []byte(key))
		if a.ID != b.ID {
			t.Errorf("key %s: %s then %s", key, a.ID, b.ID)
		}
		if addr := d.ctl(t, "pick", "pay", "--key", key); addr != a.Address {
			t.Errorf("key %s: binding %s, discctl %s", key, a.Address, addr)
		}
	}
	rr, err := NewPicker(PickRoundRobin, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	n := map[uint32]int{}
	for i := 0; i < 60; i++ {
		in, err := r.PickWith(rr, &Filter{Service: "pay"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		n[in.Weight]++
	}
	if n[10] != 10 || n[30] != 30 || n[20] != 20 {
		t.Errorf("round robin over 60 picks: %v", n)
	}
	if _, err := r.Pick(&Filter{Service: "pay", Version: "9"}, PickRandom, nil); !errors.Is(err,
		ErrNotFound) {
		t.Errorf("no match: %v", err)
	}
	if _, err := r.Pick(&Filter{Service: "pay"}, PickHash, nil); !errors.Is(err,
		syscall.EINVAL) {
		t.Errorf("hash without key: %v", err)
	}
}

func TestWaitForChange(t *testing.T) {
	r := populated(t)
	st, _ := r.Status()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := r.WaitForChange(ctx, st.ChangeSeq); !errors.Is(err,
		context.DeadlineExceeded) || time.Since(start) < 140*time.Millisecond {
		t.Fatalf("quiet wait: %v after %v", err, time.Since(start))
	}
	// Cancel wakes a waiter within one slice.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel2() }()
	start = time.Now()
	if _, err := r.WaitForChange(ctx2, st.ChangeSeq); !errors.Is(err, context.Canceled) ||
		time.Since(start) > 2*time.Second {
		t.Fatalf("cancelled wait: %v after %v", err, time.Since(start))
	}
	// A registration wakes it.
	ch, err := r.Changes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(100 * time.Millisecond); d.register(t, "late", "127.0.0.1:7301") }()
	ctx3, cancel3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel3()
	seq, err := r.WaitForChange(ctx3, st.ChangeSeq)
	if err != nil || seq == st.ChangeSeq {
		t.Fatalf("wake-up: %d %v", seq, err)
	}
	select {
	case s := <-ch:
		if s.ChangeSeq == st.ChangeSeq {
			t.Errorf("Changes sent an unchanged status")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Changes sent nothing")
	}
}

func TestStaleAfterTheWriterStops(t *testing.T) {
	d2, err := startDiscd("gostale")
	if err != nil {
		t.Fatal(err)
	}
	defer d2.cleanup()
	d2.register(t, "s", "127.0.0.1:7601")
	r, err := Open(d2.name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := r.Count("s"); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("registration not published")
		}
	}
	if f, err := r.Stale(); f != 0 || err != nil {
		t.Fatalf("live writer: stale %v %v", f, err)
	}
	if rc := d2.stop(); rc != 0 {
		t.Fatalf("discd exited %d", rc)
	}
	st, err := r.Status()
	if err != nil || st.WriterAlive() || !st.Degraded() || st.Flags&StWriterStopped == 0 ||
		st.DegradedReason.String() != "writer-stopped" || st.WriterDeadSinceMs == 0 {
		t.Errorf("after stop: %+v (%v) %v", st, st.DegradedReason, err)
	}
	if f, err := r.Stale(); f&StaleWriterDead == 0 || err != nil {
		t.Errorf("after stop: stale %v %v", f, err)
	}
	if in, err := r.Lookup("s"); err != nil || len(in) != 1 || in[0].Address != "127.0.0.1:7601" {
		t.Errorf("last picture: %+v %v", in, err)
	}
}

func TestConcurrentReaders(t *testing.T) {
	r := populated(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				got, err := r.Lookup("pay")
				if err != nil || len(got) != 3 {
					errs <- err
					return
				}
			}
		}()
	}
	for k := 0; k < 5; k++ {
		d.ctl(t, "deregister", d.register(t, "churn", "127.0.0.1:7400"))
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("reader: %v", e)
	}
}

func TestOpenOptions(t *testing.T) {
	populated(t)
	r, err := Open(d.name, WithDir(os.Getenv("DISCSHM_DIR")), WithOwner(uint32(os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Count("pay"); n != 3 || err != nil {
		t.Errorf("Count via WithDir: %d %v", n, err)
	}
	r.Close()
	if _, err := Open(d.name, WithDir(t.TempDir()+"/none")); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing dir: %v", err)
	}
	_, err = Open(d.name, WithOwner(uint32(os.Getuid())+1))
	var de *Error
	if !errors.Is(err, syscall.EPERM) || !errors.As(err, &de) || de.Detail == "" {
		t.Errorf("wrong owner: %v", err)
	}
}
