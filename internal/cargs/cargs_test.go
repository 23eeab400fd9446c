package cargs

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// probe is a C program whose constructor prints what criserver_ctor_args
// finds, after an earlier constructor removed a variable from the
// environment (in place, as oci/nsenter's does).
const probe = `#include <stdio.h>
#include <stdlib.h>
int criserver_ctor_args(int argc, char **argv, char ***out);
static void __attribute__((constructor(101))) early(void) { unsetenv("CARGS_DROP"); }
static void __attribute__((constructor(102))) probe(int argc, char **argv)
{
	char **av;
	int n = criserver_ctor_args(argc, argv, &av);
	printf("%d", n);
	for (int i = 0; i < n; i++)
		printf("|%s", av[i]);
	printf("\n");
}
int main(void) { return 0; }
`

// TestCtorArgs builds the probe with each C library and linking the
// project builds with (glibc dynamic for `go build`, musl static for
// hack/build.sh's shim) and checks that a constructor sees the arguments
// it was started with.
func TestCtorArgs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("constructors' arguments: Linux only")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	// Read here, not by the compiler only, so that go test's cache sees it.
	lib, err := os.ReadFile("cargs.c")
	if err != nil {
		t.Fatal(err)
	}
	libSrc := filepath.Join(dir, "cargs.c")
	if err := os.WriteFile(libSrc, lib, 0o644); err != nil {
		t.Fatal(err)
	}
	builds := []struct {
		name string
		cc   []string
	}{
		{name: "glibc dynamic", cc: []string{"gcc"}},
		{name: "glibc static", cc: []string{"gcc", "-static"}},
		// hack/install-tools.sh installs musl-tools: hack/build.sh builds the shim with it.
		{name: "musl static", cc: []string{"musl-gcc", "-static"}},
	}
	many := make([]string, 500)
	for i := range many {
		many[i] = "a" + strconv.Itoa(i)
	}
	runs := []struct {
		name string
		args []string
		env  []string
	}{
		{name: "no arguments", args: nil, env: []string{"A=1"}},
		{name: "a verb", args: []string{"monitor", "/run/x"}, env: []string{"CARGS_DROP=1", "B=2"}},
		{name: "empty environment", args: []string{"pod-init"}, env: []string{}},
		{name: "arguments like variables", args: []string{"X=1", "", "2"}, env: []string{"X=1"}},
		{name: "many arguments", args: many, env: []string{"CARGS_DROP=1"}},
	}
	for _, b := range builds {
		bin := filepath.Join(dir, strings.ReplaceAll(b.name, " ", "-"))
		cc := append(append([]string{}, b.cc[1:]...), "-O2", "-o", bin, src, libSrc)
		if out, err := exec.Command(b.cc[0], cc...).CombinedOutput(); err != nil {
			t.Fatalf("%s: build the probe: %v\n%s", b.name, err, out)
		}
		for _, r := range runs {
			t.Run(b.name+"/"+r.name, func(t *testing.T) {
				cmd := exec.Command(bin, r.args...)
				cmd.Env = r.env
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("run the probe: %v", err)
				}
				want := strconv.Itoa(len(r.args)+1) + "|" + strings.Join(append([]string{bin}, r.args...), "|") + "\n"
				if string(out) != want {
					t.Errorf("the constructor saw %q, want %q", out, want)
				}
			})
		}
	}
}
