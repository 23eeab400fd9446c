package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet is the client that matters: these tests run the real one
// (hack/install-tools.sh builds it, pinned) in standalone mode, static pods
// and no API server, against a private cri-server, and check what an
// operator would see through the kubelet's own API: pods running, a
// crashing container restarted with its exit code, logs, exec.

const nodeName = "cri-e2e-node"

// kubelet is one standalone kubelet process of a test.
type kubelet struct {
	dir       string // its root: config, manifests, pod logs, root-dir
	manifests string
	port      int // HTTPS API: logs, run
	roPort    int // read-only HTTP API: /pods
	health    int
	cmd       *exec.Cmd
	done      chan struct{}
	log       string
}

// kubeletSysctls are the kernel settings the kubelet sets at start
// (protectKernelDefaults: false); the test puts back what it found.
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startKubelet runs a kubelet against c's daemon. Its clean-up stops the
// kubelet, restores the sysctls and removes the /var/log/containers links
// the kubelet made for this run's containers.
func startKubelet(t *testing.T, c *cri) *kubelet {
	t.Helper()
	bin := filepath.Join(repoRoot(t), "_output", "tools", "kubelet")
	if v := os.Getenv("KUBELET_BIN"); v != "" {
		bin = v
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no kubelet at %s (hack/install-tools.sh builds it): %v", bin, err)
	}
	k := &kubelet{dir: filepath.Join(c.s.dir, "kubelet"), port: freePort(t), roPort: freePort(t), health: freePort(t)}
	k.manifests = filepath.Join(k.dir, "manifests")
	k.log = filepath.Join(k.dir, "kubelet.log")
	for _, d := range []string{k.manifests, filepath.Join(k.dir, "pod-logs"), filepath.Join(k.dir, "root")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	saved := map[string]string{}
	for _, s := range kubeletSysctls {
		saved[s] = readString(filepath.Join("/proc/sys", s))
	}
	// The device manager's socket dir is fixed: /var/lib/kubelet/device-plugins.
	_, err := os.Stat("/var/lib/kubelet")
	varLibKubelet := os.IsNotExist(err)
	chainsBefore := kubeChains()
	linksBefore := map[string]bool{}
	if ents, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, e := range ents {
			linksBefore[e.Name()] = true
		}
	}
	sock := "unix://" + c.s.sock
	cfg := map[string]any{
		"apiVersion":          "kubelet.config.k8s.io/v1beta1",
		"kind":                "KubeletConfiguration",
		"address":             "127.0.0.1",
		"port":                k.port,
		"readOnlyPort":        k.roPort,
		"healthzBindAddress":  "127.0.0.1",
		"healthzPort":         k.health,
		"staticPodPath":       k.manifests,
		"fileCheckFrequency":  "1s",
		"syncFrequency":       "2s",
		"cgroupDriver":        "cgroupfs",
		"cgroupsPerQOS":       false,
		"failCgroupV1":        false,
		"failSwapOn":          false,
		"registerNode":        false,
		"podLogsDir":          filepath.Join(k.dir, "pod-logs"),
		"resolvConf":          "/etc/resolv.conf",
		"serializeImagePulls": false,
		"volumePluginDir":     filepath.Join(k.dir, "volume-plugins"),
		// No KUBE-FIREWALL and canary chains on a shared test machine.
		"makeIPTablesUtilChains": false,
		// Stats from the CRI (ListPodSandboxStats, ListContainerStats)
		// rather than cAdvisor, and the evented PLEG on
		// GetContainerEvents: the kubelet leans on the runtime for both.
		"featureGates": map[string]bool{"PodAndContainerStatsFromCRI": true, "EventedPLEG": true},
		// The test's disk use must never evict its pods.
		"evictionHard":                map[string]string{"memory.available": "0%", "nodefs.available": "0%", "imagefs.available": "0%"},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"enforceNodeAllocatable":      []string{},
		"containerRuntimeEndpoint":    sock,
		"imageServiceEndpoint":        sock,
		"authentication": map[string]any{
			"anonymous": map[string]bool{"enabled": true},
			"webhook":   map[string]bool{"enabled": false},
		},
		"authorization": map[string]string{"mode": "AlwaysAllow"},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	writeFile(t, filepath.Join(k.dir, "config.json"), string(b))
	logf, err := os.Create(k.log)
	if err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command(bin, "--config", filepath.Join(k.dir, "config.json"),
		"--root-dir", filepath.Join(k.dir, "root"), "--cert-dir", filepath.Join(k.dir, "pki"),
		"--hostname-override", nodeName, "--v", "2")
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start kubelet: %v", err)
	}
	logf.Close()
	k.done = make(chan struct{})
	go func() { _ = k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		k.stop(t)
		// The kubelet makes its root dir a shared bind mount of itself.
		root := filepath.Join(k.dir, "root")
		for _, m := range readMountinfo(t) {
			if m.point == root {
				if err := syscall.Unmount(root, syscall.MNT_DETACH); err != nil {
					t.Errorf("unmount the kubelet's root dir: %v", err)
				}
			}
		}
		for s, v := range saved {
			if err := os.WriteFile(filepath.Join("/proc/sys", s), []byte(v), 0o644); err != nil {
				t.Errorf("restore %s: %v", s, err)
			}
		}
		if ents, err := os.ReadDir("/var/log/containers"); err == nil {
			for _, e := range ents {
				if !linksBefore[e.Name()] && strings.Contains(e.Name(), nodeName) {
					os.Remove(filepath.Join("/var/log/containers", e.Name()))
				}
			}
		}
		if varLibKubelet {
			os.RemoveAll("/var/lib/kubelet")
		}
		if after := kubeChains(); after != chainsBefore {
			t.Errorf("the kubelet left iptables chains: %q, before %q", after, chainsBefore)
		}
		dst := filepath.Join(repoRoot(t), "_output", "e2e", t.Name()+"-kubelet.log")
		_ = copyFile(k.log, dst)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", k.health))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return k
			}
		}
		select {
		case <-k.done:
			t.Fatalf("kubelet exited at start:\n%s", tail(k.log, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubelet not healthy after 60s:\n%s", tail(k.log, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kubeChains lists the KUBE-* iptables chains of every table.
func kubeChains() string {
	var out []string
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		b, _ := exec.Command(cmd).Output()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, ":KUBE-") {
				out = append(out, cmd+" "+strings.Fields(l)[0])
			}
		}
	}
	return strings.Join(out, ",")
}

func (k *kubelet) stop(t *testing.T) {
	t.Helper()
	if k.cmd == nil {
		return
	}
	_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(20 * time.Second):
		t.Errorf("kubelet still running 20s after SIGTERM; killing it")
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-k.done
	}
	k.cmd = nil
}

// addStaticPod writes a pod manifest where the kubelet watches.
func (k *kubelet) addStaticPod(t *testing.T, name string, pod map[string]any) {
	t.Helper()
	b, _ := json.MarshalIndent(pod, "", "  ")
	writeFile(t, filepath.Join(k.manifests, name+".json"), string(b))
}

// The slice of v1.Pod the tests read from the kubelet's /pods.
type kubePod struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Status struct {
		Phase             string            `json:"phase"`
		PodIP             string            `json:"podIP"`
		ContainerStatuses []kubeContainerSt `json:"containerStatuses"`
	} `json:"status"`
}

type kubeContainerSt struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	RestartCount int            `json:"restartCount"`
	ContainerID  string         `json:"containerID"`
	State        kubeStateUnion `json:"state"`
	LastState    kubeStateUnion `json:"lastState"`
}

type kubeStateUnion struct {
	Running *struct {
		StartedAt string `json:"startedAt"`
	} `json:"running"`
	Terminated *struct {
		ExitCode int    `json:"exitCode"`
		Reason   string `json:"reason"`
	} `json:"terminated"`
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting"`
}

// pods reads the kubelet's /pods. The read-only port opens a moment after
// /healthz answers: callers poll.
func (k *kubelet) pods() ([]kubePod, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/pods", k.roPort))
	if err != nil {
		return nil, fmt.Errorf("kubelet /pods: %w", err)
	}
	defer resp.Body.Close()
	var list struct {
		Items []kubePod `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("decode kubelet /pods: %w", err)
	}
	return list.Items, nil
}

// waitPod polls the kubelet's view of a pod until ok accepts it.
func (k *kubelet) waitPod(t *testing.T, name string, timeout time.Duration, what string, ok func(kubePod) bool) kubePod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last kubePod
	var err error
	for time.Now().Before(deadline) {
		var pods []kubePod
		pods, err = k.pods()
		for _, p := range pods {
			if p.Metadata.Name == name {
				last = p
				if ok(p) {
					return p
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	b, _ := json.Marshal(last.Status)
	t.Fatalf("pod %s: not %s after %s; kubelet sees %s (last error %v)\nkubelet log:\n%s", name, what, timeout, b, err, tail(k.log, 30))
	return last
}

// api calls the kubelet's HTTPS API (self-signed; anonymous allowed).
func (k *kubelet) api(t *testing.T, method, path string) string {
	t.Helper()
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest(method, fmt.Sprintf("https://127.0.0.1:%d%s", k.port, path), nil)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("kubelet %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("kubelet %s %s: %s: %s", method, path, resp.Status, b)
	}
	return string(b)
}

func containerSt(p kubePod, name string) kubeContainerSt {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == name {
			return c
		}
	}
	return kubeContainerSt{}
}

func TestKubeletStaticPod(t *testing.T) {
	requireE2E(t)
	c := privateServer(t)
	k := startKubelet(t, c)

	busyboxCtr := func(name, script string) map[string]any {
		return map[string]any{"name": name, "image": busybox, "imagePullPolicy": "IfNotPresent",
			"command": []string{"sh", "-c", script}}
	}
	k.addStaticPod(t, "web", map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "web", "namespace": "default"},
		"spec": map[string]any{
			"restartPolicy":                 "Always",
			"terminationGracePeriodSeconds": 2,
			"containers": []any{
				busyboxCtr("talker", `echo hello-from-kubelet; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done`),
				busyboxCtr("crasher", `echo going-down; exit 3`),
			},
		},
	})
	podName := "web-" + nodeName
	// An init container fills an emptyDir (a bind mount from under the
	// kubelet's shared root dir) that the app reads; the app's liveness
	// probe (ExecSync) starts failing once it removes /tmp/alive.
	k.addStaticPod(t, "vol", map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "vol", "namespace": "default"},
		"spec": map[string]any{
			"restartPolicy":                 "Always",
			"terminationGracePeriodSeconds": 1,
			"volumes":                       []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}},
			"initContainers":                []any{withMounts(busyboxCtr("fill", `echo filled-by-init > /data/msg`))},
			"containers": []any{withProbe(withMounts(busyboxCtr("app",
				`cat /data/msg; touch /tmp/alive; n=$(cat /data/runs 2>/dev/null || echo 0); echo $((n+1)) > /data/runs; `+
					`if [ $n = 0 ]; then sleep 2; rm /tmp/alive; fi; sleep 3600`)))},
		},
	})
	volPod := "vol-" + nodeName

	p := k.waitPod(t, podName, 90*time.Second, "running with talker ready", func(p kubePod) bool {
		st := containerSt(p, "talker")
		return p.Status.Phase == "Running" && st.Ready && st.State.Running != nil
	})
	if p.Status.PodIP == "" {
		t.Errorf("kubelet reports no pod IP for %s", podName)
	}
	talker := containerSt(p, "talker")
	if !strings.HasPrefix(talker.ContainerID, "cri-server://") {
		t.Errorf("talker's containerID = %q, want cri-server://<id>", talker.ContainerID)
	}

	t.Run("crash restarts with exit code", func(t *testing.T) {
		p := k.waitPod(t, podName, 60*time.Second, "showing crasher restarted", func(p kubePod) bool {
			st := containerSt(p, "crasher")
			return st.RestartCount >= 1 && st.LastState.Terminated != nil
		})
		st := containerSt(p, "crasher")
		if st.LastState.Terminated.ExitCode != 3 || st.LastState.Terminated.Reason != "Error" {
			t.Errorf("crasher's last state = %+v, want exit code 3, reason Error", *st.LastState.Terminated)
		}
		// The runtime agrees: an exited attempt with code 3.
		resp, err := c.rt.ListContainers(ctx(t), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{
			State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_EXITED}}})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ctr := range resp.Containers {
			if ctr.Metadata.Name != "crasher" {
				continue
			}
			if s, _ := c.status(t, ctr.Id); s.ExitCode == 3 {
				found = true
			}
		}
		if !found {
			t.Errorf("no exited crasher with exit code 3 among %d exited containers", len(resp.Containers))
		}
	})

	t.Run("logs through the kubelet", func(t *testing.T) {
		var out string
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if out = k.api(t, http.MethodGet, "/containerLogs/default/"+podName+"/talker"); strings.Contains(out, "tick 2\n") {
				break
			}
		}
		if !strings.HasPrefix(out, "hello-from-kubelet\ntick 0\ntick 1\ntick 2\n") {
			t.Errorf("kubelet's talker log = %q, want hello-from-kubelet, tick 0, tick 1, tick 2...", out)
		}
	})

	t.Run("stats through the kubelet", func(t *testing.T) {
		var sum struct {
			Pods []struct {
				PodRef struct {
					Name string `json:"name"`
				} `json:"podRef"`
				Containers []struct {
					Name   string `json:"name"`
					Memory *struct {
						WorkingSetBytes *uint64 `json:"workingSetBytes"`
					} `json:"memory"`
					CPU *struct {
						UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
					} `json:"cpu"`
				} `json:"containers"`
			} `json:"pods"`
		}
		if err := json.Unmarshal([]byte(k.api(t, http.MethodGet, "/stats/summary")), &sum); err != nil {
			t.Fatalf("decode /stats/summary: %v", err)
		}
		seen := false
		for _, p := range sum.Pods {
			for _, ctr := range p.Containers {
				if p.PodRef.Name != podName || ctr.Name != "talker" {
					continue
				}
				seen = true
				if ctr.Memory == nil || ctr.Memory.WorkingSetBytes == nil || *ctr.Memory.WorkingSetBytes == 0 {
					t.Errorf("talker's memory in /stats/summary = %+v, want a working set", ctr.Memory)
				}
				if ctr.CPU == nil || ctr.CPU.UsageCoreNanoSeconds == nil || *ctr.CPU.UsageCoreNanoSeconds == 0 {
					t.Errorf("talker's cpu in /stats/summary = %+v, want usage", ctr.CPU)
				}
			}
		}
		if !seen {
			t.Errorf("/stats/summary has no talker of %s: %+v", podName, sum.Pods)
		}
	})

	t.Run("evented PLEG on GetContainerEvents", func(t *testing.T) {
		metrics := k.api(t, http.MethodGet, "/metrics")
		t.Logf("kubelet evented PLEG: %v connections, %v errors, %v events with a pod status",
			metricValue(metrics, "kubelet_evented_pleg_connection_success_count"),
			metricValue(metrics, "kubelet_evented_pleg_connection_error_count"),
			metricValue(metrics, "kubelet_evented_pleg_connection_latency_seconds_count"))
		if n := metricValue(metrics, "kubelet_evented_pleg_connection_success_count"); n < 1 {
			t.Errorf("kubelet_evented_pleg_connection_success_count = %v, want >= 1 (the kubelet never opened GetContainerEvents)", n)
		}
		if n := metricValue(metrics, "kubelet_evented_pleg_connection_error_count"); n > 0 {
			t.Errorf("kubelet_evented_pleg_connection_error_count = %v: the event stream failed", n)
		}
		// Counted only for events carrying the pod's status.
		if n := metricValue(metrics, "kubelet_evented_pleg_connection_latency_seconds_count"); n < 1 {
			t.Errorf("the kubelet took no container event with a pod status (latency count %v)", n)
		}
		if strings.Contains(readString(k.log), "nil PodSandboxStatus") {
			t.Errorf("the kubelet got container events without the pod's status")
		}
	})

	t.Run("run through the kubelet", func(t *testing.T) {
		out := k.api(t, http.MethodPost, "/run/default/"+podName+"/talker?cmd=cat+/etc/hostname")
		if strings.TrimSpace(out) != podName {
			t.Errorf("kubelet /run cat /etc/hostname = %q, want %s", out, podName)
		}
	})

	t.Run("init container, emptyDir, liveness probe", func(t *testing.T) {
		p := k.waitPod(t, volPod, 60*time.Second, "running app restarted by its liveness probe", func(p kubePod) bool {
			st := containerSt(p, "app")
			return st.RestartCount >= 1 && st.State.Running != nil
		})
		if st := containerSt(p, "app"); st.LastState.Terminated == nil || st.LastState.Terminated.ExitCode != 137 {
			t.Errorf("app's last state = %+v, want killed (137) by the failed liveness probe", st.LastState)
		}
		out := k.api(t, http.MethodGet, "/containerLogs/default/"+volPod+"/app")
		if !strings.HasPrefix(out, "filled-by-init\n") {
			t.Errorf("app log = %q, want what the init container wrote to the emptyDir", out)
		}
		// At least 2: a loaded machine may fail a probe of the second run
		// before its touch.
		if runs, _ := strconv.Atoi(strings.TrimSpace(k.api(t, http.MethodPost, "/run/default/"+volPod+"/app?cmd=cat+/data/runs"))); runs < 2 {
			t.Errorf("the emptyDir counts %d runs of app, want 2 or more (kept across the restart)", runs)
		}
	})

	t.Run("cri-server killed and restarted under the kubelet", func(t *testing.T) {
		before := containerSt(k.waitPod(t, podName, 10*time.Second, "running", func(p kubePod) bool {
			return containerSt(p, "talker").State.Running != nil
		}), "talker")
		c.s.kill9(t)
		c.s.start(t)
		c.connect(t)
		// Long enough for several PLEG relists and a reconnected event stream.
		time.Sleep(6 * time.Second)
		after := containerSt(k.waitPod(t, podName, 30*time.Second, "running", func(p kubePod) bool {
			return containerSt(p, "talker").State.Running != nil
		}), "talker")
		if after.ContainerID != before.ContainerID || after.RestartCount != before.RestartCount {
			t.Errorf("talker after the daemon's restart: %s restarts %d, before %s restarts %d: the kubelet saw it die",
				after.ContainerID, after.RestartCount, before.ContainerID, before.RestartCount)
		}
		// Not checked: the event stream coming back. The kubelet (1.37)
		// retries GetContainerEvents five times at once while the socket
		// is gone, then stays on its relisting PLEG for good.
		out := k.api(t, http.MethodGet, "/containerLogs/default/"+podName+"/talker?tailLines=1")
		if !strings.HasPrefix(out, "tick ") {
			t.Errorf("talker's last log line after the restart = %q", out)
		}
	})

	t.Run("manifest removed stops the pod", func(t *testing.T) {
		for _, m := range []string{"web.json", "vol.json"} {
			if err := os.Remove(filepath.Join(k.manifests, m)); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := c.rt.ListContainers(ctx(t), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{
				State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}}})
			if err != nil {
				t.Fatal(err)
			}
			pods, err := c.rt.ListPodSandbox(ctx(t), &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{
				State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Containers) == 0 && len(pods.Items) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("60s after the manifest went: %d running containers, %d ready pods\n%s",
					len(resp.Containers), len(pods.Items), tail(k.log, 30))
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}

// metricValue is a Prometheus text sample's value, summed over its label
// sets; -1 when the metric is absent.
func metricValue(text, name string) float64 {
	v, seen := 0.0, false
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		var x float64
		if len(f) > 0 {
			if _, err := fmt.Sscan(f[0], &x); err == nil {
				v, seen = v+x, true
			}
		}
	}
	if !seen {
		return -1
	}
	return v
}

func withMounts(ctr map[string]any) map[string]any {
	ctr["volumeMounts"] = []any{map[string]any{"name": "data", "mountPath": "/data"}}
	return ctr
}

func withProbe(ctr map[string]any) map[string]any {
	ctr["livenessProbe"] = map[string]any{
		"exec":                map[string]any{"command": []string{"test", "-f", "/tmp/alive"}},
		"periodSeconds":       1,
		"initialDelaySeconds": 1,
		"failureThreshold":    1,
	}
	return ctr
}
