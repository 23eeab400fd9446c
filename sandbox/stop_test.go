package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// delPlugin is a CNI plugin that appends each DEL to a file, so a test
// sees when (and how often) the network was released.
const delPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":[{"address":"10.99.0.2/24"}]}';;
DEL) cat >/dev/null; echo "$CNI_CONTAINERID" >>"$(dirname "$0")/dels";;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}';;
esac
exit 0
`

// stopper is the server's side of StopPodSandbox as the sandbox sees it.
type stopper struct {
	mu      sync.Mutex
	fail    error         // returned by StopPodContainers
	wait    func() bool   // called while "containers are stopping"
	sawDEL  []bool        // what wait returned, per call
	removed []string      // pods whose containers were removed
	hold    time.Duration // bound on wait
}

func (s *stopper) StopPodContainers(ctx context.Context, podID string) error {
	saw := false
	if s.wait != nil {
		for deadline := time.Now().Add(s.hold); !saw && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			saw = s.wait()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sawDEL = append(s.sawDEL, saw)
	return s.fail
}

func (s *stopper) RemovePodContainers(ctx context.Context, podID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = append(s.removed, podID)
	return nil
}

// TestStopOverlapsContainersAndNetwork: StopPodSandbox kills the pod's
// containers and releases its network at the same time (the stop costs
// the slower of the two, not their sum), releases it exactly once across
// retries, and a failed container stop still leaves the network released
// and the pod not ready, with a retry that succeeds.
func TestStopOverlapsContainersAndNetwork(t *testing.T) {
	tests := []struct {
		name     string
		fail     error
		wantErr  bool
		sharePID bool
	}{
		{name: "containers stop", sharePID: false},
		{name: "shared PID namespace", sharePID: true},
		{name: "a container will not stop", fail: errors.New("container c1 did not exit"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newViewEnv(t)
			bin := filepath.Join(e.dir, "bin")
			must(t, os.MkdirAll(bin, 0o755))
			must(t, os.WriteFile(filepath.Join(bin, "crit-del"), []byte(delPlugin), 0o755))
			must(t, os.WriteFile(filepath.Join(e.dir, "net.d", "05-del.conflist"),
				[]byte(`{"cniVersion":"1.0.0","name":"crit-del","plugins":[{"type":"crit-del"}]}`), 0o644))
			e.setCNIBin(bin)
			dels := func() []string {
				b, _ := os.ReadFile(filepath.Join(bin, "dels"))
				return strings.Fields(string(b))
			}
			s := &stopper{fail: tc.fail, wait: func() bool { return len(dels()) > 0 }, hold: 10 * time.Second}
			e.pods.SetContainerStopper(s)
			cfg := &runtime.PodSandboxConfig{}
			if tc.sharePID {
				cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}}
			}
			p := e.runPod(cfg)
			ctx := context.Background()
			err := e.pods.Stop(ctx, p.ID)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Stop: %v, want error %v", err, tc.wantErr)
			}
			if len(s.sawDEL) != 1 || !s.sawDEL[0] {
				t.Errorf("the network was not released while the containers stopped (saw DEL: %v)", s.sawDEL)
			}
			got, err := e.pods.Get(p.ID)
			must(t, err)
			if got.State != "notready" || got.NetPending {
				t.Errorf("after Stop: state %s, DEL owed %v; want notready, none owed", got.State, got.NetPending)
			}
			if tc.sharePID && (got.InitPID != 0 || !gone(p.InitPID)) {
				t.Errorf("the shared PID namespace's init %d survived Stop (record says %d)", p.InitPID, got.InitPID)
			}
			s.fail, s.wait = nil, nil
			must(t, e.pods.Stop(ctx, p.ID)) // the kubelet's retry
			if d := dels(); len(d) != 1 || d[0] != p.ID {
				t.Errorf("DEL ran for %v, want once for %s", d, p.ID)
			}
			// runPod's cleanup stops and removes again: both idempotent.
		})
	}
}

// gone waits a little for pid to be reaped (its parent, this test binary,
// reaps it asynchronously after the SIGKILL).
func gone(pid int) bool {
	for range 200 {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
