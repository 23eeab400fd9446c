// Package fastread reads small kernel files (cgroup and procfs) into a
// caller's buffer with open/read/close and no other allocation: the stats
// path reads thousands of them per pass.
package fastread

import "golang.org/x/sys/unix"

// Into reads path into buf, grown as needed, and returns it. On error it
// returns what was read so far.
func Into(buf []byte, path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf[:0], err
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
