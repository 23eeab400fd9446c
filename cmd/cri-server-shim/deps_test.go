package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoDaemonPackage keeps the shim small: every package it links
// runs its init in every monitor and container init, and what the daemon
// alone needs (gRPC, protobuf, the CRI API, metrics, images) would bring
// back the memory and start-up time the shim exists to save.
func TestLinksNoDaemonPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	tests := []struct {
		name   string
		prefix string
	}{
		{"grpc", "google.golang.org/grpc"},
		{"protobuf", "google.golang.org/protobuf"},
		{"kubernetes", "k8s.io/"},
		{"prometheus", "github.com/prometheus/"},
		{"image service", "github.com/cri-server/cri-server/imagesvc"},
		{"server", "github.com/cri-server/cri-server/server"},
		{"go-digest", "github.com/opencontainers/go-digest"},
		{"net/http", "net/http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range deps {
				if strings.HasPrefix(d, tt.prefix) {
					t.Fatalf("the shim links %s", d)
				}
			}
		})
	}
	if !strings.Contains(string(out), "github.com/cri-server/cri-server/monitor\n") {
		t.Fatal("go list did not list the monitor: the check sees nothing")
	}
}
