// SPDX-License-Identifier: MIT

package discshm

import "fmt"

// Health of an instance as last judged by its discd.
type Health uint8

const (
	HealthUnknown  Health = 0
	HealthPassing  Health = 1
	HealthWarning  Health = 2
	HealthCritical Health = 3
	// HealthMaintenance: out of rotation on purpose; its check still runs.
	HealthMaintenance Health = 4
)

func (h Health) String() string {
	switch h {
	case HealthUnknown:
		return "unknown"
	case HealthPassing:
		return "passing"
	case HealthWarning:
		return "warning"
	case HealthCritical:
		return "critical"
	case HealthMaintenance:
		return "maintenance"
	}
	return fmt.Sprintf("health(%d)", uint8(h))
}

// HealthMask selects health states in a Filter: bit (1 << Health) for each
// accepted state; 0 accepts every state.
type HealthMask uint32

// HealthBit is the mask accepting h only.
func HealthBit(h Health) HealthMask { return 1 << h }

const (
	NotCritical    = HealthMask(1<<HealthUnknown | 1<<HealthPassing | 1<<HealthWarning)
	AtLeastWarning = HealthMask(1<<HealthPassing | 1<<HealthWarning)
	PassingOnly    = HealthMask(1 << HealthPassing)
	MaskAll        = NotCritical | HealthMask(1<<HealthCritical|1<<HealthMaintenance)
)

// Origin says where an instance came from, as seen by this host's discd.
type Origin uint8

const (
	OriginLocal  Origin = 1 // registered with this host's discd
	OriginRemote Origin = 2 // learned from the region (ZooKeeper)
	OriginCache  Origin = 3 // restored from the file cache, not yet confirmed
)

func (o Origin) String() string {
	switch o {
	case OriginLocal:
		return "local"
	case OriginRemote:
		return "remote"
	case OriginCache:
		return "cache"
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// AddrKind tells how to read Instance.Address.
type AddrKind uint8

const (
	AddrTCP  AddrKind = 1 // "host:port" ("[v6]:port")
	AddrUnix AddrKind = 2 // an absolute unix-socket path
)

// Network is the net.Dial network for the address: "tcp" or "unix".
func (k AddrKind) Network() string {
	if k == AddrUnix {
		return "unix"
	}
	return "tcp"
}

// Endpoint is one endpoint an instance serves. Latencies are 0 when unknown.
type Endpoint struct {
	Name         string
	RequestType  string
	ResponseType string
	MeanUs       uint32
	P95Us        uint32
}

// Instance is one registered instance, copied out of the registry.
type Instance struct {
	ID             string // textual UUID
	Service        string
	Version        string
	Host           string // host id of the registering host
	AZ             string // availability zone, may be ""
	Address        string // see AddrKind
	AddrKind       AddrKind
	Weight         uint32
	Health         Health
	Origin         Origin
	RegisteredAtMs int64 // CLOCK_REALTIME milliseconds
	// OwnerUID is the uid that registered the instance (on its own host for
	// remote instances); OwnerUnknown if not known.
	OwnerUID  uint32
	Tags      map[string]string
	Endpoints []Endpoint
}

// TagMatch is one tag condition: the instance has tag Key with value *Value
// (Value nil: any value).
type TagMatch struct {
	Key   string
	Value *string
}

// Tag is a TagMatch for key=value; HasTag one for the key with any value.
func Tag(key, value string) TagMatch { return TagMatch{Key: key, Value: &value} }
func HasTag(key string) TagMatch     { return TagMatch{Key: key} }

// Filter holds conditions that must all hold (AND). Zero fields match
// everything; a nil *Filter matches every instance.
type Filter struct {
	Service       string     // exact service name
	ServicePrefix string     // service name starts with this
	Version       string     // exact version
	MinVersion    string     // version >= this (VersionCmp order)
	AZ            *string    // exact availability zone (pointer: "" matches an empty az)
	Host          string     // exact host id
	Endpoint      string     // serves an endpoint with this name
	Health        HealthMask // 0: any health
	Tags          []TagMatch // at most 8
	Owners        []uint32   // OwnerUID must be one of these (empty: any); at most 8
}

// OwnerUnknown is Instance.OwnerUID when the owner is not known.
const OwnerUnknown = ^uint32(0)

// VersionCount is one version of a service and how many instances run it.
type VersionCount struct {
	Version   string
	Instances uint32
}

// ServiceSummary is one service in Services: its versions in version order.
type ServiceSummary struct {
	Name      string
	Instances uint32
	Versions  []VersionCount
}

// ServiceCount is one service in ServiceNames.
type ServiceCount struct {
	Name      string
	Instances uint32
}

// StatusFlags are the DISC_ST_* bits of Status.Flags.
type StatusFlags uint32

const (
	StWriterAlive  StatusFlags = 0x01 // writer heartbeat is recent
	StRecycled     StatusFlags = 0x02 // the segment was replaced (transient)
	StZKConfigured StatusFlags = 0x04 // the writer syncs with ZooKeeper
	StZKConnected  StatusFlags = 0x08 // ...and is connected now
	StDegraded     StatusFlags = 0x10 // data may be stale (see DegradedReason)
	StFromCache    StatusFlags = 0x20 // snapshot came from the file cache
	StCoolingOff   StatusFlags = 0x40 // removals held after a reconnect
	StHeldChanges  StatusFlags = 0x80 // protection is holding back removals
	// StWriterStopped: the writer shut down cleanly (see WriterDeadSinceMs).
	StWriterStopped StatusFlags = 0x100
)

// StaleFlags are the DISC_STALE_* bits of Registry.Stale and Status.Stale.
type StaleFlags uint32

const (
	StaleWriterDead StaleFlags = 0x1 // writer dead or stopped: nothing will change any more
	StaleDegraded   StaleFlags = 0x2 // the writer is cut off from the region (ZooKeeper)
	StaleFromCache  StaleFlags = 0x4 // the snapshot came from the file cache, unconfirmed
)

// DegradedReason says why the registry is degraded.
type DegradedReason uint32

// Status is the segment header as this reader sees it (disc_status).
type Status struct {
	Generation      uint64
	ChangeSeq       uint32 // pass to WaitForChange
	Flags           StatusFlags
	ABIMajor        uint32
	ABIMinor        uint32
	WriterPID       int
	DegradedReason  DegradedReason
	HeartbeatAgeMs  int64
	DegradedSinceMs int64 // CLOCK_REALTIME ms, 0 if not degraded
	LastSyncMs      int64 // CLOCK_REALTIME ms of the last ZooKeeper sync, 0 if none
	PublishedAtMs   int64
	Services        uint32
	Instances       uint32
	SegmentBytes    uint64
	UsedBytes       uint64
	Overtakes       uint64
	HeldChanges     uint32
	// When the writer is not alive: CLOCK_REALTIME ms it shut down
	// (StWriterStopped) or last heartbeated; 0 while it is alive.
	WriterDeadSinceMs int64
	WriterDeadAfterMs uint32 // the heartbeat threshold readers apply
	Stale             StaleFlags
}

// WriterAlive reports whether discd's heartbeat is recent.
func (s Status) WriterAlive() bool { return s.Flags&StWriterAlive != 0 }

// Degraded reports whether the data may be stale.
func (s Status) Degraded() bool { return s.Flags&StDegraded != 0 }

// PickPolicy chooses how Pick selects among matching instances.
type PickPolicy int

const (
	PickRandom     PickPolicy = 1 // weighted random
	PickRoundRobin PickPolicy = 2 // smooth weighted round robin (state in the Picker)
	PickHash       PickPolicy = 3 // weighted rendezvous hashing on a key
)
