// Package e2e holds the end-to-end tests that run a built cri-server as a
// real node would: crictl against its socket, then critest's validate suite
// against the local test registry. It also owns the reading of critest's
// JUnit report, shared by the Go test and hack/critest.sh
// (through cmd/critest-summary).
package e2e

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Result is one spec's outcome in a critest run.
type Result struct {
	// Name is the spec's full text as ginkgo reports it, without the node
	// type prefix for It nodes ("[It] "); suite nodes keep theirs
	// ("[BeforeSuite]").
	Name    string
	Status  string // passed, failed, skipped, pending, panicked, timedout, interrupted
	Message string // first line of the failure or skip message
}

// Failed reports whether the spec ran and did not pass.
func (r Result) Failed() bool {
	switch r.Status {
	case "failed", "panicked", "timedout", "interrupted", "aborted":
		return true
	}
	return false
}

// Summary is a whole critest run.
type Summary struct {
	Results []Result
}

// Counts returns the passed, failed and skipped (or pending) totals.
func (s Summary) Counts() (passed, failed, skipped int) {
	for _, r := range s.Results {
		switch {
		case r.Status == "passed":
			passed++
		case r.Failed():
			failed++
		default:
			skipped++
		}
	}
	return passed, failed, skipped
}

// Line is the one-line total hack/critest.sh and the e2e test print.
func (s Summary) Line() string {
	p, f, k := s.Counts()
	return fmt.Sprintf("critest: %d passed, %d failed, %d skipped", p, f, k)
}

// Failing lists the names of the specs that failed, sorted.
func (s Summary) Failing() []string {
	var names []string
	for _, r := range s.Results {
		if r.Failed() {
			names = append(names, r.Name)
		}
	}
	sort.Strings(names)
	return names
}

// Status returns the outcome of the named spec, "" when the run lacks it.
func (s Summary) Status(name string) string {
	for _, r := range s.Results {
		if r.Name == name {
			return r.Status
		}
	}
	return ""
}

type junitCase struct {
	Name    string `xml:"name,attr"`
	Status  string `xml:"status,attr"`
	Failure *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
	Error *struct {
		Message string `xml:"message,attr"`
	} `xml:"error"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
}

type junitSuites struct {
	Suites []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

// ParseJUnit reads a ginkgo JUnit report (critest -ginkgo.junit-report).
func ParseJUnit(r io.Reader) (Summary, error) {
	var js junitSuites
	if err := xml.NewDecoder(r).Decode(&js); err != nil {
		return Summary{}, fmt.Errorf("decode junit report: %w", err)
	}
	var s Summary
	for _, suite := range js.Suites {
		for _, c := range suite.Cases {
			res := Result{Name: strings.TrimPrefix(c.Name, "[It] "), Status: c.Status}
			switch {
			case c.Failure != nil:
				res.Message = c.Failure.Message
				if res.Status == "" {
					res.Status = "failed"
				}
			case c.Error != nil:
				res.Message = c.Error.Message
				if res.Status == "" {
					res.Status = "failed"
				}
			case c.Skipped != nil:
				res.Message = c.Skipped.Message
				if res.Status == "" {
					res.Status = "skipped"
				}
			}
			if res.Status == "" {
				res.Status = "passed"
			}
			// Suite-level nodes ([BeforeSuite], [ReportAfterSuite]...) are
			// not specs: they count only when they fail, since then every
			// spec after them is void.
			if !strings.HasPrefix(c.Name, "[It] ") && !res.Failed() {
				continue
			}
			res.Message, _, _ = strings.Cut(strings.TrimSpace(res.Message), "\n")
			s.Results = append(s.Results, res)
		}
	}
	if len(s.Results) == 0 {
		return s, fmt.Errorf("decode junit report: no test cases")
	}
	return s, nil
}

// ParseJUnitFile is ParseJUnit on a file.
func ParseJUnitFile(path string) (Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return Summary{}, fmt.Errorf("open junit report: %w", err)
	}
	defer f.Close()
	return ParseJUnit(f)
}

// SkipRegexp is a ginkgo -skip expression matching exactly the named specs.
// Ginkgo matches a spec's text; its JUnit name adds " [Serial]" for serial
// specs, which the text lacks.
func SkipRegexp(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(strings.TrimSuffix(n, " [Serial]"))
	}
	return "(" + strings.Join(quoted, "|") + ")$"
}

// ReadSpecList reads a list of spec names: one per line; blank lines and
// lines starting with '#' are ignored; in exclusion lists a reason follows
// the name after " # ".
func ReadSpecList(path string) (map[string]string, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open spec list: %w", err)
	}
	defer f.Close()
	notes := map[string]string{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, note, _ := strings.Cut(line, " # ")
		name = strings.TrimSpace(name)
		if _, dup := notes[name]; dup {
			return nil, nil, fmt.Errorf("read spec list %s: %q listed twice", path, name)
		}
		notes[name] = strings.TrimSpace(note)
		order = append(order, name)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read spec list %s: %w", path, err)
	}
	return notes, order, nil
}
