package pgtest

import "syscall"

// procAttr runs the server as cred in a process group of its own (so that
// Stop can kill it with its children), and has the kernel kill it when the
// thread that started it ends: the test binary's exit, however it ends.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
