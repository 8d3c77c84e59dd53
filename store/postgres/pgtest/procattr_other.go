//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs the server as cred in a process group of its own, so that
// Stop can kill it with its children.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
