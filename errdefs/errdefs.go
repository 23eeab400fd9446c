// Package errdefs owns cri-server's error classes. Packages classify an
// error where it arises by wrapping one of the sentinels ("create container:
// %w", errdefs.ErrNotFound); the server's RPC boundary converts it once with
// errdefs/grpcerr, the one table that maps classes to gRPC codes, so the
// kubelet never sees codes.Unknown for a failure we understood.
//
// This package imports no gRPC: the container init links it, and gRPC's and
// protobuf's package init would run in every container start.
package errdefs

import (
	"errors"
	"fmt"
)

// The error classes. Wrap them with fmt.Errorf("...: %w", ErrX) or use the
// helpers below; test with errors.Is.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrNotImplemented     = errors.New("not implemented")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
	ErrAborted            = errors.New("aborted")
)

// classified is an error that carries its class without putting the class's
// text into the message: "pod abc" rather than "pod abc: not found".
type classified struct {
	msg   string
	class error
}

func (c *classified) Error() string        { return c.msg }
func (c *classified) Is(target error) bool { return target == c.class }

// New returns an error of class with a formatted message.
func New(class error, format string, args ...any) error {
	return &classified{msg: fmt.Sprintf(format, args...), class: class}
}

// NotFound, InvalidArgument, ... are shorthands for New(ErrX, ...).
func NotFound(format string, args ...any) error {
	return New(ErrNotFound, format, args...)
}
func AlreadyExists(format string, args ...any) error {
	return New(ErrAlreadyExists, format, args...)
}
func InvalidArgument(format string, args ...any) error {
	return New(ErrInvalidArgument, format, args...)
}
func FailedPrecondition(format string, args ...any) error {
	return New(ErrFailedPrecondition, format, args...)
}
func Unimplemented(format string, args ...any) error {
	return New(ErrNotImplemented, format, args...)
}
