// Command critest-summary prints the totals and failing specs of a critest
// JUnit report: the output contract of hack/critest.sh.
//
//	critest-summary REPORT.xml
//
// It exits 1 when the report cannot be read, 0 otherwise (failing specs are
// the caller's to judge).
package main

import (
	"fmt"
	"os"

	"github.com/cri-server/cri-server/test/e2e"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: critest-summary REPORT.xml")
		os.Exit(2)
	}
	s, err := e2e.ParseJUnitFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "critest-summary:", err)
		os.Exit(1)
	}
	fmt.Println(s.Line())
	for _, name := range s.Failing() {
		fmt.Println("FAILED:", name)
	}
}
