// Package errdefs owns cri-server's error classes and the one table that maps
// them to gRPC codes. Packages classify an error where it arises by wrapping
// one of the sentinels ("create container: %w", errdefs.ErrNotFound); the
// server's RPC boundary converts it once with ToGRPC, so the kubelet never
// sees codes.Unknown for a failure we understood.
package errdefs

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

var table = []struct {
	class error
	code  codes.Code
}{
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrUnavailable, codes.Unavailable},
	{ErrNotImplemented, codes.Unimplemented},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrResourceExhausted, codes.ResourceExhausted},
	{ErrDeadlineExceeded, codes.DeadlineExceeded},
	{ErrAborted, codes.Aborted},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// Code returns the gRPC code for err's class, codes.Unknown if it has none.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	for _, e := range table {
		if errors.Is(err, e.class) {
			return e.code
		}
	}
	return codes.Unknown
}

// ToGRPC converts err into a gRPC status error with the code of its class.
// An error that already is a status passes through.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}

// FromGRPC turns a gRPC status error back into a classified error, so a
// client of our own socket can test it with errors.Is.
func FromGRPC(err error) error {
	s, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	for _, e := range table {
		if e.code == s.Code() {
			return New(e.class, "%s", s.Message())
		}
	}
	return err
}
