module github.com/cri-server/cri-server

go 1.26.0

require (
	github.com/cyphar/filepath-securejoin v0.6.0
	github.com/opencontainers/runtime-spec v1.3.0
	github.com/seccomp/libseccomp-golang v0.11.1
	golang.org/x/sys v0.48.0
	google.golang.org/grpc v1.85.0
)

require (
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
