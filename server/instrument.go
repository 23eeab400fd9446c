package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/cri-server/cri-server/errdefs/grpcerr"
)

// rpcName turns "/runtime.v1.RuntimeService/Version" into "Version".
func rpcName(full string) string {
	return full[strings.LastIndexByte(full, '/')+1:]
}

// level picks how loudly a finished call is logged: errors the kubelet
// causes by design (NotFound on status polls, Unimplemented) stay at debug
// so that a healthy node's log is quiet.
func level(code codes.Code) slog.Level {
	switch code {
	case codes.OK, codes.NotFound, codes.Unimplemented, codes.Canceled:
		return slog.LevelDebug
	case codes.Unknown, codes.Internal, codes.DataLoss:
		return slog.LevelError
	default:
		return slog.LevelWarn
	}
}

// UnaryInterceptor is the one boundary every unary RPC crosses: it converts
// errors to gRPC codes exactly once and logs the call with its duration.
func (s *Server) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	err = grpcerr.ToGRPC(err)
	s.logCall(ctx, info.FullMethod, start, err)
	return resp, err
}

// StreamInterceptor does the same for the Stream* and GetContainerEvents RPCs.
func (s *Server) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := grpcerr.ToGRPC(handler(srv, ss))
	s.logCall(ss.Context(), info.FullMethod, start, err)
	return err
}

func (s *Server) logCall(ctx context.Context, method string, start time.Time, err error) {
	code := grpcerr.Code(err)
	s.metrics.observe(rpcName(method), code, time.Since(start))
	lvl := level(code)
	if !s.log.Enabled(ctx, lvl) {
		return
	}
	attrs := []slog.Attr{
		slog.String("rpc", rpcName(method)),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("code", code.String()), slog.String("error", err.Error()))
	}
	s.log.LogAttrs(ctx, lvl, "rpc", attrs...)
}
