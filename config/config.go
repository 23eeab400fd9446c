// Package config owns cri-server's configuration: its defaults, the TOML file
// that overrides them, validation, and printing the effective result. A
// daemon with no file at all must run with these defaults.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where the daemon looks for its file when --config is unset.
const DefaultPath = "/etc/cri-server/config.toml"

// Config is the effective configuration. Field tags are the TOML keys.
type Config struct {
	// Root holds what survives a reboot: images, metadata.
	Root string `toml:"root" json:"root"`
	// State holds what must not: sockets, pinned namespaces, exit files.
	State string `toml:"state" json:"state"`
	// Listen is the CRI unix socket.
	Listen string `toml:"listen" json:"listen"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level" json:"log_level"`
	// CgroupDriver is cgroupfs or systemd, reported to the kubelet in
	// RuntimeConfig so that it names cgroup parents the same way.
	CgroupDriver string `toml:"cgroup_driver" json:"cgroup_driver"`

	CNI       CNI       `toml:"cni" json:"cni"`
	Registry  Registry  `toml:"registry" json:"registry"`
	Streaming Streaming `toml:"streaming" json:"streaming"`
	Metrics   Metrics   `toml:"metrics" json:"metrics"`
	Security  Security  `toml:"security" json:"security"`
}

// Security holds the node-wide defaults of container security contexts.
type Security struct {
	// DefaultCapabilities is the bounding set of an unprivileged container
	// before the pod's add/drop: containerd's 14 (Docker's) by default;
	// CRI-O ships a smaller set, and an operator may too. Names are CAP_X.
	DefaultCapabilities []string `toml:"default_capabilities" json:"default_capabilities"`
}

// DefaultCapabilities is containerd's (Docker's) default set, the one the
// kubelet's conformance tests assume.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// Metrics configures the Prometheus endpoint (/metrics).
type Metrics struct {
	// Address is host:port to serve on; "" turns the endpoint off.
	Address string `toml:"address" json:"address"`
}

// Streaming configures the HTTP server that serves exec, attach and
// port-forward streams to the kubelet (or crictl).
type Streaming struct {
	// Address is host:port; port 0 picks a free one. Loopback by default:
	// the kubelet proxies the streams, so nothing else needs to reach it.
	Address string `toml:"address" json:"address"`
	// TLSCertFile and TLSKeyFile, both or neither, serve HTTPS.
	TLSCertFile string `toml:"tls_cert_file" json:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file" json:"tls_key_file"`
}

// CNI locates network configuration and plugins.
type CNI struct {
	ConfDir string   `toml:"conf_dir" json:"conf_dir"`
	BinDirs []string `toml:"bin_dirs" json:"bin_dirs"`
	// NamespacePool is how many pods' namespaces (net, ipc, uts) are kept
	// made ahead for bursts of RunPodSandbox, each about 175 KB of kernel
	// memory; 0 turns the pool off.
	NamespacePool int `toml:"namespace_pool" json:"namespace_pool"`
	// MaxParallelAdd is how many CNI ADDs run at once; more wait their
	// turn in arrival order (cni.Manager.SetMaxParallelAdd), and an ADD
	// running longer than cni.SlotHold gives its turn away. 0: two per
	// CPU; negative: no bound.
	MaxParallelAdd int `toml:"max_parallel_add" json:"max_parallel_add"`
}

// ParallelAdd is MaxParallelAdd resolved: 0 for no bound.
func (c CNI) ParallelAdd() int {
	switch {
	case c.MaxParallelAdd < 0:
		return 0
	case c.MaxParallelAdd == 0:
		return 2 * goruntime.NumCPU()
	}
	return c.MaxParallelAdd
}

// Registry holds per-registry settings for pulls.
type Registry struct {
	// Insecure registries are reached over plain HTTP (host or host:port).
	Insecure []string `toml:"insecure" json:"insecure"`
	// Mirrors maps a registry host to the endpoints tried before it.
	Mirrors map[string]Mirror `toml:"mirrors" json:"mirrors"`
	// Auths holds credentials per registry or mirror host: the kubelet
	// sends credentials for the image's own registry only, never for a
	// mirror (containerd issue 10540).
	Auths map[string]RegistryAuth `toml:"auths" json:"-"`
}

// RegistryAuth is one host's credential, the fields of the CRI AuthConfig.
type RegistryAuth struct {
	Username      string `toml:"username"`
	Password      string `toml:"password"`
	Auth          string `toml:"auth"`
	IdentityToken string `toml:"identity_token"`
}

// Mirror is an ordered list of endpoints ("http://127.0.0.1:5000" or
// "https://mirror.example").
type Mirror struct {
	Endpoints []string `toml:"endpoints" json:"endpoints"`
}

// Default returns the configuration used when no file exists.
func Default() *Config {
	return &Config{
		Root:         "/var/lib/cri-server",
		State:        "/run/cri-server",
		Listen:       "/run/cri-server/cri-server.sock",
		LogLevel:     "info",
		CgroupDriver: "cgroupfs",
		CNI: CNI{
			ConfDir: "/etc/cni/net.d",
			BinDirs: []string{"/opt/cni/bin"},
			// Enough for a burst of pod starts (a node coming up, a
			// scale-out) to skip making their own: 11 MB of kernel memory.
			NamespacePool: 64,
		},
		Registry:  Registry{Mirrors: map[string]Mirror{}},
		Streaming: Streaming{Address: "127.0.0.1:0"},
		Metrics:   Metrics{Address: "127.0.0.1:9191"},
		Security:  Security{DefaultCapabilities: DefaultCapabilities()},
	}
}

// Load reads path over the defaults. A missing file is not an error when
// mustExist is false (the default path); an explicit --config must exist.
func Load(path string, mustExist bool) (*Config, error) {
	c := Default()
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !mustExist:
		return c, c.Validate()
	case err != nil:
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := c.decode(data, path); err != nil {
		return nil, err
	}
	return c, c.Validate()
}

func (c *Config) decode(data []byte, path string) error {
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("config %s: %s", path, perr.ErrorWithPosition())
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	if c.Registry.Mirrors == nil {
		c.Registry.Mirrors = map[string]Mirror{}
	}
	return nil
}

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	for _, p := range []struct{ key, val string }{
		{"root", c.Root}, {"state", c.State}, {"listen", c.Listen}, {"cni.conf_dir", c.CNI.ConfDir},
	} {
		if !filepath.IsAbs(p.val) {
			return fmt.Errorf("config key %s: %q is not an absolute path", p.key, p.val)
		}
	}
	for _, d := range c.CNI.BinDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("config key cni.bin_dirs: %q is not an absolute path", d)
		}
	}
	if len(c.CNI.BinDirs) == 0 {
		return fmt.Errorf("config key cni.bin_dirs: at least one directory is needed")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		return fmt.Errorf("config key log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if !slices.Contains([]string{"cgroupfs", "systemd"}, c.CgroupDriver) {
		return fmt.Errorf("config key cgroup_driver: %q is not cgroupfs or systemd", c.CgroupDriver)
	}
	for host, m := range c.Registry.Mirrors {
		if host == "" || strings.ContainsAny(host, "/ ") {
			return fmt.Errorf("config key registry.mirrors: %q is not a registry host", host)
		}
		for _, e := range m.Endpoints {
			if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
				return fmt.Errorf("config key registry.mirrors.%q.endpoints: %q needs http:// or https://", host, e)
			}
		}
	}
	if _, _, err := net.SplitHostPort(c.Streaming.Address); err != nil {
		return fmt.Errorf("config key streaming.address: %q is not host:port", c.Streaming.Address)
	}
	if a := c.Metrics.Address; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("config key metrics.address: %q is not host:port", a)
		}
	}
	if (c.Streaming.TLSCertFile == "") != (c.Streaming.TLSKeyFile == "") {
		return fmt.Errorf("config key streaming.tls_cert_file: needs streaming.tls_key_file too, and the other way round")
	}
	if err := c.Security.validate(); err != nil {
		return err
	}
	for _, h := range c.Registry.Insecure {
		if h == "" || strings.ContainsAny(h, "/ ") {
			return fmt.Errorf("config key registry.insecure: %q is not a host or host:port", h)
		}
	}
	return nil
}

// TOML renders the effective configuration in the file's own format.
func (c *Config) TOML() string {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return fmt.Sprintf("# cannot encode: %v\n", err)
	}
	return b.String()
}

func (s Security) validate() error {
	seen := map[string]bool{}
	for _, c := range s.DefaultCapabilities {
		name, ok := strings.CutPrefix(c, "CAP_")
		if !ok || name == "" || strings.Trim(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != "" {
			return fmt.Errorf("config key security.default_capabilities: %q is not a capability name like CAP_CHOWN", c)
		}
		if seen[c] {
			return fmt.Errorf("config key security.default_capabilities: %q is listed twice", c)
		}
		seen[c] = true
	}
	return nil
}
