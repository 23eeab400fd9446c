package grpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cri-server/cri-server/errdefs"
)

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"nil", nil, codes.OK},
		{"wrapped sentinel", fmt.Errorf("remove pod x: %w", errdefs.ErrNotFound), codes.NotFound},
		{"helper", errdefs.InvalidArgument("bad name %q", "a/b"), codes.InvalidArgument},
		{"double wrap", fmt.Errorf("a: %w", fmt.Errorf("b: %w", errdefs.ErrAlreadyExists)), codes.AlreadyExists},
		{"context", fmt.Errorf("pull: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"status passes", status.Error(codes.Aborted, "x"), codes.Aborted},
		{"plain", errors.New("boom"), codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Code(tt.err); got != tt.want {
				t.Fatalf("Code(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestMessageKeepsNoClassSuffix(t *testing.T) {
	err := errdefs.NotFound("pod %s", "abc")
	if err.Error() != "pod abc" {
		t.Fatalf("message %q", err.Error())
	}
	st, _ := status.FromError(ToGRPC(err))
	if st.Code() != codes.NotFound || st.Message() != "pod abc" {
		t.Fatalf("status %v", st)
	}
	if !errors.Is(FromGRPC(ToGRPC(err)), errdefs.ErrNotFound) {
		t.Fatal("round trip lost the class")
	}
}
