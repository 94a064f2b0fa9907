// SPDX-License-Identifier: MIT

package discshm

// #include <discshm.h>
import "C"

import (
	"fmt"
	"syscall"
)

// Error is a failed libdiscshm call: the C function and the errno it
// returned (negated). It unwraps to the syscall.Errno, so
// errors.Is(err, discshm.ErrNotFound) (or fs.ErrNotExist, syscall.ENOENT)
// works.
type Error struct {
	Op     string        // the C function, e.g. "disc_lookup"
	Errno  syscall.Errno // e.g. syscall.ENOENT
	Detail string        // libdiscshm's explanation when it gives one (open), else ""
}

func (e *Error) Error() string {
	msg := C.GoString(C.disc_strerror(-C.int(e.Errno)))
	if e.Detail != "" {
		return fmt.Sprintf("discshm: %s: %s: %s", e.Op, msg, e.Detail)
	}
	return fmt.Sprintf("discshm: %s: %s", e.Op, msg)
}

func (e *Error) Unwrap() error { return e.Errno }

// Sentinels for errors.Is.
var (
	ErrNotFound = syscall.ENOENT    // no such registry, service or instance; nothing matched
	ErrTimeout  = syscall.ETIMEDOUT // WaitForChange saw no change in time
	ErrCorrupt  = syscall.EBADMSG   // the segment failed validation
	ErrClosed   = fmt.Errorf("discshm: registry is closed")
)

func newError(op string, rc C.int) error {
	return &Error{Op: op, Errno: syscall.Errno(-rc)}
}
