package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const sampleReport = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="0" errors="0" failures="2" time="1.0">
  <testsuite name="CRI validation" package="/x" tests="5" disabled="0" skipped="1" errors="0" failures="2" time="1.0">
    <testcase name="[BeforeSuite]" classname="CRI validation" status="passed" time="0.1"></testcase>
    <testcase name="[It] [k8s.io] A runtime should pass" classname="CRI validation" status="passed" time="0.1"></testcase>
    <testcase name="[It] [k8s.io] B runtime should fail [Conformance] [Serial]" classname="CRI validation" status="failed" time="0.1">
      <failure message="[FAILED] Unexpected error:&#xA;second line" type="failed">long text</failure>
    </testcase>
    <testcase name="[It] [k8s.io] C runtime is skipped" classname="CRI validation" status="skipped" time="0">
      <skipped message="skipped - not supported"></skipped>
    </testcase>
    <testcase name="[It] [k8s.io] D runtime panics" classname="CRI validation" status="panicked" time="0">
      <error message="runtime error" type="panicked"></error>
    </testcase>
    <testcase name="[AfterSuite]" classname="CRI validation" status="passed" time="0"></testcase>
  </testsuite>
</testsuites>`

func TestParseJUnit(t *testing.T) {
	s, err := ParseJUnit(strings.NewReader(sampleReport))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Line(), "critest: 1 passed, 2 failed, 1 skipped"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
	wantFailing := []string{"[k8s.io] B runtime should fail [Conformance] [Serial]", "[k8s.io] D runtime panics"}
	if got := s.Failing(); !slices.Equal(got, wantFailing) {
		t.Errorf("Failing() = %q, want %q", got, wantFailing)
	}
	tests := []struct {
		name, spec, status string
	}{
		{name: "passed spec", spec: "[k8s.io] A runtime should pass", status: "passed"},
		{name: "failed spec", spec: "[k8s.io] B runtime should fail [Conformance] [Serial]", status: "failed"},
		{name: "skipped spec", spec: "[k8s.io] C runtime is skipped", status: "skipped"},
		{name: "suite node not a spec", spec: "[BeforeSuite]", status: ""},
		{name: "absent spec", spec: "[k8s.io] Z", status: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Status(tt.spec); got != tt.status {
				t.Errorf("Status(%q) = %q, want %q", tt.spec, got, tt.status)
			}
		})
	}
	for _, r := range s.Results {
		if strings.Contains(r.Message, "\n") {
			t.Errorf("message of %q has several lines: %q", r.Name, r.Message)
		}
	}
}

func TestParseJUnitBad(t *testing.T) {
	tests := []struct{ name, in string }{
		{name: "not xml", in: "critest: crashed"},
		{name: "no test cases", in: `<testsuites><testsuite name="x"></testsuite></testsuites>`},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseJUnit(strings.NewReader(tt.in)); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestSkipRegexp(t *testing.T) {
	re := regexp.MustCompile(SkipRegexp([]string{
		"[k8s.io] Image Manager public image with digest should be pulled and removed [Conformance] [Serial]",
		"[k8s.io] X a (b) spec",
	}))
	tests := []struct {
		name, text string
		match      bool
	}{
		{name: "serial spec by its text", text: "[k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]", match: true},
		{name: "metacharacters", text: "[k8s.io] X a (b) spec", match: true},
		{name: "other spec", text: "[k8s.io] Image Manager public image with tag should be pulled and removed [Conformance]", match: false},
		{name: "longer spec", text: "[k8s.io] X a (b) spec and more", match: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := re.MatchString(tt.text); got != tt.match {
				t.Errorf("match(%q) = %v, want %v (re %s)", tt.text, got, tt.match, re)
			}
		})
	}
}

func TestReadSpecList(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    []string
		reason  string
		wantErr bool
	}{
		{name: "comments and blanks", content: "# header\n\n[k8s.io] A x\n  [k8s.io] B y  \n", want: []string{"[k8s.io] A x", "[k8s.io] B y"}},
		{name: "reasons", content: "[k8s.io] A x # digest-pinned\n", want: []string{"[k8s.io] A x"}, reason: "digest-pinned"},
		{name: "duplicate", content: "[k8s.io] A\n[k8s.io] A\n", wantErr: true},
		{name: "empty", content: "# nothing yet\n", want: nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.Repeat("x", i+1))
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			notes, order, err := ReadSpecList(p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !slices.Equal(order, tt.want) {
				t.Errorf("names = %q, want %q", order, tt.want)
			}
			if tt.reason != "" && notes[tt.want[0]] != tt.reason {
				t.Errorf("reason = %q, want %q", notes[tt.want[0]], tt.reason)
			}
		})
	}
}

// The repository's own lists must parse and not overlap.
func TestSpecListsInRepo(t *testing.T) {
	must, _, err := ReadSpecList("critest-must-pass.txt")
	if err != nil {
		t.Fatal(err)
	}
	excl, _, err := ReadSpecList("critest-excluded.txt")
	if err != nil {
		t.Fatal(err)
	}
	for name, reason := range excl {
		if reason == "" {
			t.Errorf("excluded spec without a reason: %q", name)
		}
		if _, ok := must[name]; ok {
			t.Errorf("spec both must pass and is excluded: %q", name)
		}
	}
}
