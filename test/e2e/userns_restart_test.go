package e2e

import (
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A hostUsers: false pod outlives a kill -9 of the daemon: its pinned user
// namespace is the pod's record's, and a container created after the
// restart joins the same one as the container started before.
func TestUserNSPodSurvivesKill9(t *testing.T) {
	requireE2E(t)
	c := privateServer(t)
	c.pull(t, busybox)
	m := []*runtime.IDMapping{{ContainerId: 0, HostId: 65536 * 301, Length: 65536}}
	p := c.runPod(t, "userns", func(cfg *runtime.PodSandboxConfig) {
		cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
			UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}}}
	})
	defer c.removePod(t, p.id)
	usernsOf := func(id string) string {
		t.Helper()
		r, err := c.rt.ExecSync(ctx(t), &runtime.ExecSyncRequest{ContainerId: id,
			Cmd: []string{"sh", "-c", "readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u"}, Timeout: 10})
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("exec: %v, exit %d, stderr %q", err, r.GetExitCode(), r.GetStderr())
		}
		out := string(r.Stdout)
		if f := strings.Fields(out); len(f) != 5 || f[1] != "0" || f[2] != "19726336" || f[4] != "0" {
			t.Fatalf("exec output %q: want user ns, uid_map 0 19726336 65536, uid 0", out)
		}
		return strings.Fields(out)[0]
	}
	early := c.create(t, p, "early", []string{"sleep", "3600"}, nil)
	c.start(t, early)
	before := usernsOf(early)

	c.s.kill9(t)
	c.s.start(t)
	c.connect(t)

	late := c.create(t, p, "late", []string{"sleep", "3600"}, nil)
	c.start(t, late)
	if got := usernsOf(late); got != before {
		t.Errorf("container created after the restart is in %s, the pod's first in %s", got, before)
	}
	if got := usernsOf(early); got != before {
		t.Errorf("early container's user namespace changed: %s, was %s", got, before)
	}
}
