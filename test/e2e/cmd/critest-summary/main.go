// Command critest-summary is the helper of hack/critest.sh.
//
//	critest-summary REPORT.xml      print "critest: N passed, N failed, N skipped"
//	                                and "FAILED: <spec>" per failing spec
//	critest-summary -skip LIST.txt  print a ginkgo -skip regexp for the specs
//	                                of a spec list (test/e2e/critest-excluded.txt)
//
// It exits 1 when its input cannot be read, 0 otherwise (failing specs are
// the caller's to judge).
package main

import (
	"fmt"
	"os"

	"github.com/cri-server/cri-server/test/e2e"
)

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "-skip":
		_, names, err := e2e.ReadSpecList(os.Args[2])
		if err != nil {
			fail(err)
		}
		if len(names) > 0 {
			fmt.Println(e2e.SkipRegexp(names))
		}
	case len(os.Args) == 2:
		s, err := e2e.ParseJUnitFile(os.Args[1])
		if err != nil {
			fail(err)
		}
		fmt.Println(s.Line())
		for _, name := range s.Failing() {
			fmt.Println("FAILED:", name)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: critest-summary REPORT.xml | critest-summary -skip LIST.txt")
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "critest-summary:", err)
	os.Exit(1)
}
