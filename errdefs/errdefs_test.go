package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestClasses(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		class error
		msg   string
	}{
		{"helper", NotFound("pod %s", "abc"), ErrNotFound, "pod abc"},
		{"wrapped helper", fmt.Errorf("remove pod: %w", InvalidArgument("bad name %q", "a/b")), ErrInvalidArgument, `remove pod: bad name "a/b"`},
		{"wrapped sentinel", fmt.Errorf("create: %w", ErrAlreadyExists), ErrAlreadyExists, "create: already exists"},
		{"new", New(ErrAborted, "x %d", 1), ErrAborted, "x 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.class) {
				t.Errorf("%v is not %v", tt.err, tt.class)
			}
			if errors.Is(tt.err, ErrUnavailable) {
				t.Errorf("%v is also unavailable", tt.err)
			}
			if tt.err.Error() != tt.msg {
				t.Errorf("message %q, want %q", tt.err.Error(), tt.msg)
			}
		})
	}
}
