package imagesvc

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain fails the run if any test left a mount under its temp dirs. The
// tests get a temp root of their own, so that mounts of other packages'
// tests running at the same time are not taken for ours.
func TestMain(m *testing.M) {
	root, err := os.MkdirTemp("", "imagesvc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("TMPDIR", root)
	code := m.Run()
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], root+"/") {
			fmt.Fprintln(os.Stderr, "leaked mount:", f[4])
			code = 1
		}
	}
	if code == 0 {
		os.RemoveAll(root)
	}
	os.Exit(code)
}
