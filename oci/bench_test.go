package oci_test

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkRunTrue measures create+start+wait+delete of a busybox container
// running /bin/true through the Go API, the daemon's path: no command line,
// the sealed init binary cached in the Runtime.
func BenchmarkRunTrue(b *testing.B) {
	e := newEnv(b)
	root := busyboxRootfs(b, e.dir)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := "bench-" + strconv.Itoa(i)
		spec := baseSpec(root, "/bin/true")
		spec.Linux.CgroupsPath = e.cg + "/" + id
		c, err := e.rt.Create(ctx, id, spec, IOnull())
		if err != nil {
			b.Fatal(err)
		}
		if err := e.rt.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Wait(); err != nil {
			b.Fatal(err)
		}
		if err := e.rt.Delete(ctx, id, false); err != nil {
			b.Fatal(err)
		}
	}
}
