package oci

import (
	"errors"
	"fmt"

	"github.com/cri-server/cri-server/errdefs"
)

// PrivilegeError is a kernel refusal of a spec field the caller lacks the
// privilege for: an oomScoreAdj below the caller's own (no CAP_SYS_RESOURCE)
// or an rlimit above the hard limit. The layer above may clamp and retry.
type PrivilegeError struct {
	Field     string // spec field, e.g. "process.oomScoreAdj"
	Requested int64
	Allowed   int64 // the value the kernel would accept, when known
	Err       error
}

func (e *PrivilegeError) Error() string {
	return fmt.Sprintf("set %s to %d (allowed %d): %v", e.Field, e.Requested, e.Allowed, e.Err)
}

func (e *PrivilegeError) Is(target error) bool { return target == errdefs.ErrPermissionDenied }
func (e *PrivilegeError) Unwrap() error        { return e.Err }

// initError is an error reported by the init over the sync socket, rebuilt in
// the parent with its class so callers can use errors.Is / errors.As.
type initError struct {
	Msg       string `json:"msg"`
	Class     string `json:"class,omitempty"` // "invalid", "privilege", "notimpl"
	Field     string `json:"field,omitempty"`
	Requested int64  `json:"requested,omitempty"`
	Allowed   int64  `json:"allowed,omitempty"`
}

func (e *initError) toError() error {
	switch e.Class {
	case "privilege":
		return &PrivilegeError{Field: e.Field, Requested: e.Requested, Allowed: e.Allowed, Err: errors.New(e.Msg)}
	case "invalid":
		return errdefs.InvalidArgument("%s", e.Msg)
	case "notimpl":
		return errdefs.Unimplemented("%s", e.Msg)
	}
	return errors.New(e.Msg)
}

// classErr marks an error raised inside the init with a class for the parent.
type classErr struct {
	class, field string
	req, allowed int64
	err          error
}

func (c *classErr) Error() string { return c.err.Error() }
func (c *classErr) Unwrap() error { return c.err }

func invalidf(format string, args ...any) error {
	return &classErr{class: "invalid", err: fmt.Errorf(format, args...)}
}

func toInitError(err error) *initError {
	ie := &initError{Msg: err.Error()}
	var ce *classErr
	if errors.As(err, &ce) {
		ie.Class, ie.Field, ie.Requested, ie.Allowed = ce.class, ce.field, ce.req, ce.allowed
	}
	return ie
}
