package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// A daemon killed between starting a pod's init and writing init.pid
// finds the init on its next start by the pod dir in its environment, and
// only the init of that dir.
func TestFindInitByPodDir(t *testing.T) {
	bin := t.TempDir()
	// A stand-in whose argv[1] is "pod-init", as the real init's is: sh
	// running a script of that name.
	if err := os.WriteFile(filepath.Join(bin, initArg), []byte("sleep 100\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := func(dir string) *exec.Cmd {
		cmd := exec.Command("/bin/sh", initArg)
		cmd.Dir = bin
		cmd.Env = append(os.Environ(), podDirEnv+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		})
		return cmd
	}
	podA, podB := t.TempDir(), t.TempDir()
	a := start(podA)
	tests := []struct {
		name string
		dir  string
		want int
	}{
		{name: "its pod dir", dir: podA, want: a.Process.Pid},
		{name: "another pod dir", dir: podB, want: 0},
		{name: "a prefix of its pod dir", dir: filepath.Dir(podA), want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := findInit(tt.dir); got != tt.want {
				t.Errorf("findInit(%s) = %d, want %d", tt.dir, got, tt.want)
			}
		})
	}
}
