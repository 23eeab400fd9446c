// Package cni is cri-server's only user of libcni: it finds the network
// configuration, runs the plugins, and turns their results into pod IPs.
// It knows nothing of the CRI.
package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// ErrNoConfig is the reason NetworkReady is false: no valid conflist.
var ErrNoConfig = errors.New("no valid network config in the CNI conf dir")

// Manager finds the network config and runs plugins.
type Manager struct {
	confDir  string
	binDirs  []string
	cacheDir string
	addSlots chan struct{} // nil: ADDs unbounded (SetMaxParallelAdd)
}

// New returns a manager over confDir and the plugin dirs.
func New(confDir string, binDirs []string) *Manager {
	return &Manager{confDir: confDir, binDirs: binDirs}
}

// Load returns the network config in use: the first file in lexical order
// that parses as a conflist (or a single conf, wrapped) with at least one
// plugin, as the kubelet ecosystem expects. Read on every call so that a
// change to the dir takes effect without a restart.
func (m *Manager) Load() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(m.confDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("read CNI conf dir %s: %w", m.confDir, err)
	}
	sort.Strings(files)
	var reasons []error
	for _, f := range files {
		list, err := loadFile(f)
		if err != nil {
			reasons = append(reasons, err)
			continue
		}
		return list, nil
	}
	if len(reasons) == 0 {
		return nil, fmt.Errorf("%w %s", ErrNoConfig, m.confDir)
	}
	return nil, fmt.Errorf("%w %s: %w", ErrNoConfig, m.confDir, errors.Join(reasons...))
}

func loadFile(path string) (*libcni.NetworkConfigList, error) {
	var list *libcni.NetworkConfigList
	if ext := extOf(path); ext == ".conflist" {
		l, err := libcni.ConfListFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		list = l
	} else {
		conf, err := libcni.ConfFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		l, err := libcni.ConfListFromConf(conf)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		list = l
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("load %s: no plugins", path)
	}
	return list, nil
}

func extOf(path string) string {
	for i := len(path) - 1; i >= 0 && path[i] != os.PathSeparator; i-- {
		if path[i] == '.' {
			return path[i:]
		}
	}
	return ""
}

// statusTimeout bounds the plugins' STATUS on the kubelet's Status poll.
const statusTimeout = 10 * time.Second

// Status says whether pods can get a network now: nil, or why not (no
// valid config, or a CNI 1.1 plugin reporting not ready).
func (m *Manager) Status() error {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	return m.Ready(ctx)
}
