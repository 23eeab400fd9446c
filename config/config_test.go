package config

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr string
		check   func(*testing.T, *Config)
	}{
		{name: "empty file keeps defaults", body: "", check: func(t *testing.T, c *Config) {
			if c.Root != "/var/lib/cri-server" || c.CNI.BinDirs[0] != "/opt/cni/bin" || c.CgroupDriver != "cgroupfs" {
				t.Fatalf("defaults lost: %+v", c)
			}
		}},
		{name: "overrides and mirrors", body: `
root = "/tmp/r"
log_level = "debug"
[cni]
conf_dir = "/tmp/net.d"
[registry]
insecure = ["127.0.0.1:5000"]
[registry.mirrors."registry.k8s.io"]
endpoints = ["http://127.0.0.1:5000"]
`, check: func(t *testing.T, c *Config) {
			if c.Root != "/tmp/r" || c.LogLevel != "debug" || c.CNI.ConfDir != "/tmp/net.d" {
				t.Fatalf("not applied: %+v", c)
			}
			if got := c.Registry.Mirrors["registry.k8s.io"].Endpoints; len(got) != 1 || got[0] != "http://127.0.0.1:5000" {
				t.Fatalf("mirror: %v", got)
			}
			if c.State != "/run/cri-server" {
				t.Fatalf("unset key lost its default: %q", c.State)
			}
		}},
		{name: "unknown key named", body: "root = \"/r\"\nrootdir = \"/x\"\n", wantErr: "unknown key rootdir"},
		{name: "unknown nested key named", body: "[cni]\nconfdir = \"/x\"\n", wantErr: "unknown key cni.confdir"},
		{name: "bad level", body: `log_level = "loud"`, wantErr: "config key log_level"},
		{name: "bad driver", body: `cgroup_driver = "x"`, wantErr: "config key cgroup_driver"},
		{name: "relative path", body: `state = "run"`, wantErr: "config key state"},
		{name: "wrong type", body: `root = 3`, wantErr: "root"},
		{name: "mirror without scheme", body: "[registry.mirrors.\"docker.io\"]\nendpoints = [\"m:5000\"]\n", wantErr: "needs http"},
		{name: "bad streaming address", body: "[streaming]\naddress = \"localhost\"\n", wantErr: "streaming.address"},
		{name: "cert without key", body: "[streaming]\ntls_cert_file = \"/c\"\n", wantErr: "tls_key_file"},
		{name: "syntax error has position", body: "root = \n", wantErr: "line 1"},
		{name: "default capabilities are containerd's 14", body: "", check: func(t *testing.T, c *Config) {
			if len(c.Security.DefaultCapabilities) != 14 || c.Security.DefaultCapabilities[0] != "CAP_CHOWN" {
				t.Fatalf("default capabilities %v", c.Security.DefaultCapabilities)
			}
		}},
		{name: "smaller capability set", body: "[security]\ndefault_capabilities = [\"CAP_CHOWN\", \"CAP_KILL\"]\n", check: func(t *testing.T, c *Config) {
			if got := c.Security.DefaultCapabilities; len(got) != 2 || got[1] != "CAP_KILL" {
				t.Fatalf("capabilities %v", got)
			}
		}},
		{name: "empty capability set", body: "[security]\ndefault_capabilities = []\n", check: func(t *testing.T, c *Config) {
			if got := c.Security.DefaultCapabilities; got == nil || len(got) != 0 {
				t.Fatalf("capabilities %#v, want empty and not nil", got)
			}
		}},
		{name: "capability without prefix", body: "[security]\ndefault_capabilities = [\"CHOWN\"]\n", wantErr: "security.default_capabilities"},
		{name: "capability twice", body: "[security]\ndefault_capabilities = [\"CAP_KILL\", \"CAP_KILL\"]\n", wantErr: "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(t, tt.body), true)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.toml")
	if _, err := Load(p, false); err != nil {
		t.Fatalf("default path missing must be fine: %v", err)
	}
	if _, err := Load(p, true); err == nil {
		t.Fatal("an explicit --config that does not exist must fail")
	}
}

func TestTOMLRoundTrip(t *testing.T) {
	c := Default()
	c.Registry.Mirrors["docker.io"] = Mirror{Endpoints: []string{"http://127.0.0.1:5000"}}
	back, err := Load(write(t, c.TOML()), true)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, c.TOML())
	}
	if back.Registry.Mirrors["docker.io"].Endpoints[0] != "http://127.0.0.1:5000" || back.Listen != c.Listen {
		t.Fatalf("round trip changed the config:\n%s", back.TOML())
	}
}

func TestParallelAdd(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  int
		want int
	}{
		{name: "default: two per CPU", set: 0, want: 2 * goruntime.NumCPU()},
		{name: "no bound", set: -1, want: 0},
		{name: "explicit", set: 3, want: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (CNI{MaxParallelAdd: tc.set}).ParallelAdd(); got != tc.want {
				t.Errorf("ParallelAdd() with max_parallel_add = %d: %d, want %d", tc.set, got, tc.want)
			}
		})
	}
}
