package oci

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sealedExe copies the init binary into a sealed memfd. The container's
// processes can reach the init's /proc/<pid>/exe while it runs inside their
// namespaces (create, exec); with the real binary they could reopen it for
// writing after we exit and replace cri-server on the host (CVE-2019-5736).
// A sealed memfd cannot be written by anyone. The copy is made once per
// Runtime, not per container.
func sealedExe(src string) (*os.File, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open init binary: %w", err)
	}
	defer in.Close()
	fd, err := unix.MemfdCreate("cri-server-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("create memfd: %w", err)
	}
	out := os.NewFile(uintptr(fd), "cri-server-init")
	fi, err := in.Stat()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("stat init binary: %w", err)
	}
	// copy_file_range does not work into a memfd; sendfile does, in one call
	// per 2 GiB.
	for n := fi.Size(); n > 0; {
		w, err := unix.Sendfile(fd, int(in.Fd()), nil, int(n))
		if err != nil || w == 0 {
			if _, err2 := io.Copy(out, in); err2 != nil {
				out.Close()
				return nil, fmt.Errorf("copy init binary: %w", err2)
			}
			break
		}
		n -= int64(w)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		out.Close()
		return nil, fmt.Errorf("seal init binary: %w", err)
	}
	return out, nil
}
