//go:build unix

package main

import "syscall"

// fileLimit returns how many file descriptors the process may open: its
// soft RLIMIT_NOFILE, which the Go runtime raises to the hard limit as the
// process starts (see syscall's init), so an operator raises it by raising
// the hard limit (ulimit -Hn, LimitNOFILE=, docker --ulimit nofile=).
func fileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return defaultFileLimit
	}
	return int(min(lim.Cur, 1<<30))
}
