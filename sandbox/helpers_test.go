package sandbox_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cri-server/cri-server/internal/testutil"
)

var applets = []string{"sh", "cat", "hostname", "tr", "sleep", "echo"}

// busyboxRootfs builds a rootfs from the node's dynamic busybox and its libs.
func busyboxRootfs(t testing.TB, dir string) string {
	t.Helper()
	return testutil.BusyboxRootfs(t, dir, applets)
}

func must(t testing.TB, err error) { t.Helper(); testutil.Must(t, err) }

func children() []string { return testutil.Children() }

func childrenOf(ppid int) []int { return testutil.ChildrenOf(ppid) }

// rmdirTree removes a cgroup dir and its children, leaves first; a dir
// gone already is fine.
func rmdirTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	for _, d := range ents {
		if d.IsDir() {
			if err := rmdirTree(filepath.Join(dir, d.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
