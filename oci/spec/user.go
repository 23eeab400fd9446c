package spec

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// setUser resolves the process user. The kubelet's run_as_user /
// run_as_username win over the image's USER; names are looked up in the
// container's own /etc/passwd and /etc/group, opened with RESOLVE_IN_ROOT
// because the rootfs is attacker-controlled (a symlinked /etc/passwd must
// not read the host's).
//
// AdditionalGids start with the primary gid, as in containerd: the
// kubelet's ContainerStatus.user and `id -G` both list it. Then, with
// SupplementalGroupsPolicy Merge (the default), the groups the image's
// /etc/group gives the user, and last the pod's supplemental_groups.
// Strict leaves out the image's groups.
func setUser(s *specs.Spec, in Input) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	if sc.GetRunAsUser() != nil && sc.GetRunAsUsername() != "" {
		return errdefs.InvalidArgument("security_context: run_as_user and run_as_username are both set; only one may be")
	}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return errdefs.InvalidArgument("security_context.run_as_group %d is set without run_as_user or run_as_username", sc.GetRunAsGroup().GetValue())
	}
	userStr := in.Image.User
	switch {
	case sc.GetRunAsUser() != nil:
		if v := sc.GetRunAsUser().GetValue(); v < 0 || v > maxID {
			return errdefs.InvalidArgument("security_context.run_as_user %d: out of range", v)
		}
		userStr = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	case sc.GetRunAsUsername() != "":
		userStr = sc.GetRunAsUsername()
	}
	uid, gid, err := ResolveUser(in.Rootfs, userStr)
	if err != nil {
		return err
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if g.GetValue() < 0 || g.GetValue() > maxID {
			return errdefs.InvalidArgument("security_context.run_as_group %d: out of range", g.GetValue())
		}
		gid = uint32(g.GetValue())
	}
	u := specs.User{UID: uid, GID: gid, AdditionalGids: []uint32{gid}}
	if sc.GetSupplementalGroupsPolicy() != runtime.SupplementalGroupsPolicy_Strict {
		if name := userName(in.Rootfs, userStr, uid); name != "" {
			for _, g := range groupsOf(in.Rootfs, name, gid) {
				u.AdditionalGids = appendUnique(u.AdditionalGids, g)
			}
		}
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > maxID {
			return errdefs.InvalidArgument("security_context.supplemental_groups: %d out of range", g)
		}
		u.AdditionalGids = appendUnique(u.AdditionalGids, uint32(g))
	}
	s.Process.User = u
	return nil
}

// maxID is the largest valid uid/gid; (uid_t)-1 means "unchanged" to the
// kernel's set*id calls.
const maxID = 1<<32 - 2

func appendUnique(l []uint32, v uint32) []uint32 {
	for _, x := range l {
		if x == v {
			return l
		}
	}
	return append(l, v)
}

// ResolveUser turns "", "uid", "uid:gid", "name", "name:group" into ids,
// reading names from the rootfs. A numeric uid without a passwd entry is
// fine (gid 0), as in Docker.
func ResolveUser(rootfs, user string) (uid, gid uint32, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		uid = uint32(n)
		if e, ok := findPasswd(rootfs, func(e passwdEntry) bool { return e.uid == uid }); ok {
			gid = e.gid
		}
	} else {
		e, ok := findPasswd(rootfs, func(e passwdEntry) bool { return e.name == u })
		if !ok {
			return 0, 0, errdefs.InvalidArgument("user %q: no such user in the image's /etc/passwd", u)
		}
		uid, gid = e.uid, e.gid
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uid, uint32(n), nil
	}
	grp, ok := findGroup(rootfs, func(e groupEntry) bool { return e.name == g })
	if !ok {
		return 0, 0, errdefs.InvalidArgument("group %q: no such group in the image's /etc/group", g)
	}
	return uid, grp.gid, nil
}

func userName(rootfs, user string, uid uint32) string {
	u, _, _ := strings.Cut(user, ":")
	if _, err := strconv.ParseUint(u, 10, 32); err != nil {
		return u
	}
	if e, ok := findPasswd(rootfs, func(e passwdEntry) bool { return e.uid == uid }); ok {
		return e.name
	}
	return ""
}

// groupsOf lists the supplementary groups naming user, as login(1) would.
func groupsOf(rootfs, user string, primary uint32) []uint32 {
	var out []uint32
	forEachLine(rootfs, "/etc/group", func(f []string) bool {
		if len(f) < 4 {
			return false
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || uint32(gid) == primary {
			return false
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == user {
				out = appendUnique(out, uint32(gid))
			}
		}
		return false
	})
	return out
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name string
	gid  uint32
}

func findPasswd(rootfs string, match func(passwdEntry) bool) (passwdEntry, bool) {
	var found passwdEntry
	ok := forEachLine(rootfs, "/etc/passwd", func(f []string) bool {
		if len(f) < 4 {
			return false
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return false
		}
		e := passwdEntry{f[0], uint32(uid), uint32(gid)}
		if match(e) {
			found = e
			return true
		}
		return false
	})
	return found, ok
}

func findGroup(rootfs string, match func(groupEntry) bool) (groupEntry, bool) {
	var found groupEntry
	ok := forEachLine(rootfs, "/etc/group", func(f []string) bool {
		if len(f) < 3 {
			return false
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return false
		}
		e := groupEntry{f[0], uint32(gid)}
		if match(e) {
			found = e
			return true
		}
		return false
	})
	return found, ok
}

// forEachLine calls fn with the colon-separated fields of each line of the
// file at path inside rootfs until fn returns true; it reports whether it did.
func forEachLine(rootfs, path string, fn func([]string) bool) bool {
	f, err := openInRoot(rootfs, path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if fn(strings.Split(line, ":")) {
			return true
		}
	}
	return false
}

func openInRoot(rootfs, path string) (*os.File, error) {
	root, err := os.Open(rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), strings.TrimPrefix(path, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errors.New("not a regular file")
	}
	return f, nil
}
