package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A pod with hostUsers: false through the real kubelet (issue 8): the
// kubelet picks the pod's id range and sends it as userns_options; the
// containers run as root inside and an unprivileged range outside, and the
// emptyDir the kubelet made (an idmapped mount) is usable by the
// container's root.
func TestKubeletUserNSPod(t *testing.T) {
	requireE2E(t)
	c := privateServer(t)
	k := startKubelet(t, c)
	k.addStaticPod(t, "userns", map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "userns", "namespace": "default"},
		"spec": map[string]any{
			"hostUsers":                     false,
			"restartPolicy":                 "Always",
			"terminationGracePeriodSeconds": 1,
			"volumes":                       []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}},
			"containers": []any{withMounts(map[string]any{"name": "app", "image": busybox, "imagePullPolicy": "IfNotPresent",
				"command": []string{"sh", "-c", `cat /proc/self/uid_map; echo uid=$(id -u); echo hi > /data/f && echo DATA-OK; ` +
					`stat -c 'data-owner %u' /data/f; touch /etc/x && echo ROOTFS-OK; echo END; sleep 3600`}})},
		},
	})
	name := "userns-" + nodeName
	k.waitPod(t, name, 90*time.Second, "running", func(p kubePod) bool {
		st := containerSt(p, "app")
		return p.Status.Phase == "Running" && st.State.Running != nil
	})
	var out string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if out = k.api(t, http.MethodGet, "/containerLogs/default/"+name+"/app"); strings.Contains(out, "END") {
			break
		}
	}
	t.Logf("container output:\n%s", out)
	f := strings.Fields(out)
	if len(f) < 3 || f[0] != "0" || f[1] == "0" {
		t.Errorf("uid_map %q: want container 0 mapped to a non-root host id", strings.SplitN(out, "\n", 2)[0])
	}
	for _, want := range []string{"uid=0", "DATA-OK", "data-owner 0", "ROOTFS-OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// On the host, the file the container's root wrote into the emptyDir.
	files, _ := filepath.Glob(filepath.Join(k.dir, "root", "pods", "*", "volumes", "kubernetes.io~empty-dir", "data", "f"))
	if len(files) != 1 {
		t.Fatalf("emptyDir file on the host: %v", files)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(files[0], &st); err != nil {
		t.Fatal(err)
	}
	// The kubelet gives every volume of such a pod the pod's mappings
	// (CRI Mount.uid_mappings), so the volume is an idmapped mount: what
	// the container's root writes is root's on disk, as a hostUsers: true
	// pod's would be, while the process itself is the unprivileged uid of
	// the uid_map above.
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("the container root's file in the idmapped emptyDir is %d:%d on disk, want 0:0", st.Uid, st.Gid)
	}
}
