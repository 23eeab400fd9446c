package oci

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/cri-server/cri-server/errdefs"
)

func TestAppArmorAttrPath(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exists map[string]bool
		want   string
	}{
		{name: "LSM stacking (5.8+)", exists: map[string]bool{"/proc/thread-self/attr/apparmor/exec": true, "/proc/thread-self/attr/exec": true},
			want: "/proc/thread-self/attr/apparmor/exec"},
		{name: "older kernel", exists: map[string]bool{"/proc/thread-self/attr/exec": true}, want: "/proc/thread-self/attr/exec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := appArmorAttr(func(p string) bool { return tc.exists[p] }); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDefaultAppArmorProfileText(t *testing.T) {
	p := DefaultAppArmorProfileText("cri-server-default")
	for _, want := range []string{
		"profile cri-server-default flags=(attach_disconnected,mediate_deleted) {",
		"#include <tunables/global>", "#include <abstractions/base>",
		"deny mount,", "deny @{PROC}/sysrq-trigger rwklx,", "deny /sys/kernel/security/** rwklx,",
		"signal (send,receive) peer=cri-server-default,", "ptrace (trace,read,tracedby,readby) peer=cri-server-default,",
	} {
		if !strings.Contains(p, want) {
			t.Errorf("profile lacks %q", want)
		}
	}
	if strings.Count(p, "{") != strings.Count(p, "}") {
		t.Error("unbalanced braces")
	}
	if !strings.HasSuffix(p, "}\n") {
		t.Error("profile does not end with its closing brace")
	}
}

func TestProfileListed(t *testing.T) {
	list := "docker-default (enforce)\ncri-server-default (enforce)\n/usr/bin/man (complain)\n"
	for _, tc := range []struct {
		name, profile string
		want          bool
	}{
		{name: "loaded", profile: "cri-server-default", want: true},
		{name: "path profile", profile: "/usr/bin/man", want: true},
		{name: "prefix only", profile: "cri-server", want: false},
		{name: "absent", profile: "other", want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := profileListed(strings.NewReader(list), tc.profile)
			if err != nil || got != tc.want {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestFindParser(t *testing.T) {
	for _, tc := range []struct {
		name    string
		have    map[string]bool
		want    string
		wantErr bool
	}{
		{name: "in PATH", have: map[string]bool{"apparmor_parser": true}, want: "/usr/bin/apparmor_parser"},
		{name: "in /sbin only", have: map[string]bool{"/sbin/apparmor_parser": true}, want: "/sbin/apparmor_parser"},
		{name: "missing", have: map[string]bool{}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			look := func(f string) (string, error) {
				if !tc.have[f] {
					return "", exec.ErrNotFound
				}
				if !strings.HasPrefix(f, "/") {
					return "/usr/bin/" + f, nil
				}
				return f, nil
			}
			got, err := findParser(look)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "apparmor_parser") {
					t.Fatalf("got %q %v, want an error naming apparmor_parser", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}

// On this kernel (no AppArmor) a profile is refused with the field's name,
// not dropped.
func TestCheckAppArmorWithoutAppArmor(t *testing.T) {
	if AppArmorEnabled() {
		t.Skip("the node has AppArmor")
	}
	if err := checkAppArmor(""); err != nil {
		t.Fatalf("no profile: %v", err)
	}
	err := checkAppArmor(DefaultAppArmorProfile)
	if err == nil || !strings.Contains(err.Error(), "process.apparmorProfile") || !strings.Contains(err.Error(), "not enabled") {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("error class: %v", err)
	}
}
