package imagesvc

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain fails the run if any test left a mount under the temp dir.
func TestMain(m *testing.M) {
	code := m.Run()
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], os.TempDir()+"/Test") {
			fmt.Fprintln(os.Stderr, "leaked mount:", f[4])
			code = 1
		}
	}
	os.Exit(code)
}
