package main

import (
	"debug/elf"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProductIsStatic: hack/build.sh links cri-server and the shim it
// embeds statically (against musl: hack/static-flags.sh), so that no start
// of either pays for a dynamic loader or glibc's CPU probing.
func TestProductIsStatic(t *testing.T) {
	bin := builtBinary(t)
	for _, tc := range []struct{ name, path string }{
		{name: "cri-server", path: bin},
		{name: "embedded shim", path: "cri-server-shim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := elf.Open(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s has a %v segment: dynamically linked", tc.path, p.Type)
				}
			}
		})
	}
}

// TestProductPodInitSheds: the reaper of shared-PID pods, entered from a
// C constructor of the product binary (sandbox/podinit), finds its
// arguments (musl gives a constructor none: internal/cargs) and sheds
// every mapping but a few pages, then ends on SIGTERM.
func TestProductPodInitSheds(t *testing.T) {
	if goruntime.GOARCH != "amd64" {
		t.Skip("the init sheds its mappings on amd64 only")
	}
	bin := builtBinary(t)
	cmd := exec.Command(bin, "pod-init")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	defer func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	// Shed: the kept code page, the stack and [vsyscall] (which refuses
	// to go) are all that is mapped, and it waits for a signal. Midway
	// through the execve the new address space is as small, but SIGTERM
	// would not be blocked yet.
	proc := "/proc/" + strconv.Itoa(cmd.Process.Pid)
	shed := func() (bool, string) {
		b, err := os.ReadFile(proc + "/maps")
		if err != nil {
			t.Fatalf("pod-init is gone: %v", err)
		}
		maps := string(b)
		return strings.Count(maps, "\n") <= 3 && !strings.Contains(maps, "[vdso]") && inSyscall(proc, syscall.SYS_RT_SIGTIMEDWAIT), maps
	}
	ok, maps := false, ""
	for deadline := time.Now().Add(2 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ok, maps = shed()
	}
	if !ok {
		t.Errorf("pod-init did not shed its mappings and wait for signals:\n%s", maps)
	}
	b, err := os.ReadFile(proc + "/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	rss := -1
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Rss:" {
			rss, _ = strconv.Atoi(f[1])
		}
	}
	if rss < 0 || rss >= 256 {
		t.Errorf("pod-init RSS %d kB, want under 256 kB", rss)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	done = true
	if err != nil {
		t.Errorf("pod-init after SIGTERM: %v, want exit 0", err)
	}
}

// inSyscall reports whether the process at proc is blocked in system call nr.
func inSyscall(proc string, nr int) bool {
	b, err := os.ReadFile(proc + "/syscall")
	f := strings.Fields(string(b))
	return err == nil && len(f) > 0 && f[0] == strconv.Itoa(nr)
}
