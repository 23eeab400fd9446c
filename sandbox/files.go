package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/cni"
)

const defaultShmSize = 64 << 20

// writeFileAtomic replaces path in one rename, so a container starting
// meanwhile never bind-mounts a half-written file.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// hostsFile is what the kubelet's own etc-hosts looks like, plus the pod's
// addresses naming its hostname.
func hostsFile(hostname string, ips []string) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return []byte(b.String())
}

// resolvFile builds resolv.conf from the pod's dns_config, or copies the
// node's when the kubelet gave none.
func resolvFile(dns *runtime.DNSConfig) ([]byte, error) {
	if dns == nil || (len(dns.Servers) == 0 && len(dns.Searches) == 0 && len(dns.Options) == 0) {
		b, err := os.ReadFile("/etc/resolv.conf")
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read host resolv.conf: %w", err)
		}
		return b, nil
	}
	var b strings.Builder
	for _, s := range dns.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Searches, " "))
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.Options, " "))
	}
	return []byte(b.String()), nil
}

// mountShm gives the pod its own /dev/shm, shared by its containers.
func mountShm(path string, size int64) error {
	if err := os.Mkdir(path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create shm dir: %w", err)
	}
	opts := fmt.Sprintf("mode=1777,size=%d", size)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount pod shm: %w", err)
	}
	return nil
}

func unmountShm(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount pod shm: %w", err)
	}
	return nil
}

// attachmentFile in a pod dir holds the CNI attachment from just before
// ADD until the pod's record is stored, for the start-up sweep's DEL.
const attachmentFile = "net.json"

func writeAttachment(dir string, a *cni.Attachment) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode CNI attachment: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, attachmentFile), b)
}

// readAttachment returns the attachment a setup journaled in dir, nil if
// none (it died before ADD) or unreadable (it died writing it: the rename
// never happened, so ADD never ran).
func readAttachment(dir string) *cni.Attachment {
	b, err := os.ReadFile(filepath.Join(dir, attachmentFile))
	if err != nil {
		return nil
	}
	a := new(cni.Attachment)
	if err := json.Unmarshal(b, a); err != nil {
		return nil
	}
	return a
}

// recordFile in a pod dir is the ready pod's record, written before its
// store commit (storeReady): a daemon that dies before that commit is
// durable finds the pod by it on start (adoptUnstored).
const recordFile = "pod.json"
