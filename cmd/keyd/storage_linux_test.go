//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// setFileSizeLimit sets the soft RLIMIT_FSIZE of process pid (prlimit(2),
// as `prlimit --pid` does), keeping its hard limit, so the limit can be
// raised again later. With a limit of 0 every write(2) to a regular file
// fails with EFBIG; pipes and sockets are not affected.
func setFileSizeLimit(t *testing.T, pid int, limit uint64) {
	t.Helper()
	var old syscall.Rlimit
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		0, uintptr(unsafe.Pointer(&old)), 0, 0); errno != 0 {
		t.Fatalf("prlimit: %v", errno)
	}
	limits := syscall.Rlimit{Cur: min(limit, old.Max), Max: old.Max}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		uintptr(unsafe.Pointer(&limits)), 0, 0, 0); errno != 0 {
		t.Fatalf("prlimit: %v", errno)
	}
}

const noFileSizeLimit = ^uint64(0) // RLIM_INFINITY

// cpuTime is the user and system time process pid has used.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 14th and 15th fields of the line.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// storageScenario is an account with an alias and a webhook on a running keyd.
type storageScenario struct {
	k              *keydProcess
	lc             *loadClient
	accountID, key string
	aliasID, alias string
}

func newStorageScenario(t *testing.T, k *keydProcess, hookURL string) *storageScenario {
	t.Helper()
	s := &storageScenario{k: k, lc: newLoadClient(k.url)}
	var created struct {
		Account struct{ ID string }
		Key     string
	}
	s.lc.mustDo(t, "POST", "/admin/v1/accounts", crashTestAdminToken, true,
		map[string]any{"name": "Storage", "email": "o@storage.test", "plan": "pro", "credits": 1000}, &created)
	s.accountID, s.key = created.Account.ID, created.Key
	if hookURL != "" {
		s.lc.mustDo(t, "POST", "/v1/webhooks", s.key, false, map[string]any{"url": hookURL, "events": []string{"alias.*"}}, nil)
	}
	var alias struct {
		Alias struct{ ID string }
		Key   string
	}
	s.lc.mustDo(t, "POST", "/v1/aliases", s.key, false, map[string]any{"name": "before"}, &alias)
	s.aliasID, s.alias = alias.Alias.ID, alias.Key
	return s
}

// expectUnavailable checks that every kind of write is refused with 503
// STORAGE_UNAVAILABLE and that validation still answers from memory.
func (s *storageScenario) expectUnavailable(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	writes := []struct {
		method, path, key string
		bearer            bool
		body              any
	}{
		{"POST", "/v1/aliases", s.key, false, map[string]any{"name": "during"}},
		{"POST", "/v1/aliases/" + s.aliasID + "/deactivate", s.key, false, nil},
		{"POST", "/v1/usage", s.alias, false, map[string]any{"units": 5, "idempotency_key": "during"}},
		{"POST", "/v1/account/reset-key", s.key, false, map[string]any{}},
		{"POST", "/admin/v1/accounts/" + s.accountID + "/credits", crashTestAdminToken, true, map[string]any{"amount": 10}},
	}
	for _, w := range writes {
		a, err := s.lc.do(ctx, w.method, w.path, w.key, w.bearer, w.body)
		if err != nil {
			t.Fatalf("%s %s: %v", w.method, w.path, err)
		}
		if a.status != http.StatusServiceUnavailable || a.code() != "STORAGE_UNAVAILABLE" {
			t.Fatalf("%s %s while the database cannot be written: %s", w.method, w.path, a)
		}
	}
	for _, key := range []string{s.key, s.alias} {
		a, err := s.lc.validate(ctx, key, "https://client.storage.test/")
		if err != nil || a.status != 200 || a.code() != "VALID" {
			t.Fatalf("validate while the database cannot be written: %s, %v", a, err)
		}
	}
	if a, err := s.lc.do(ctx, "GET", "/v1/account", s.key, false, nil); err != nil || a.status != 200 {
		t.Fatalf("read while the database cannot be written: %s, %v", a, err)
	}
}

// expectRecovered checks that writes work again, and that the refused ones
// changed nothing: the pool is whole, the alias still active, the key the same.
func (s *storageScenario) expectRecovered(t *testing.T) {
	t.Helper()
	var alias struct{ Key string }
	s.lc.mustDo(t, "POST", "/v1/aliases", s.key, false, map[string]any{"name": "during"}, &alias)
	var c struct{ Credits int64 }
	s.lc.mustDo(t, "POST", "/v1/usage", s.alias, false, map[string]any{"units": 5, "idempotency_key": "during"}, &c)
	if c.Credits != 995 {
		t.Fatalf("credits %d after the first charge that succeeded, want 995", c.Credits)
	}
	for _, key := range []string{s.key, s.alias, alias.Key} {
		a, err := s.lc.validate(context.Background(), key, "")
		if err != nil || a.code() != "VALID" {
			t.Fatalf("validate after recovery: %s, %v", a, err)
		}
	}
}

// stopAndCheck stops keyd in order and checks the database file.
func (s *storageScenario) stopAndCheck(t *testing.T, dbPath string) {
	t.Helper()
	s.k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.k.done:
	case <-time.After(30 * time.Second):
		t.Fatal("keyd did not stop on SIGTERM")
	}
	if code := s.k.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("keyd exited with %d", code)
	}
	var integrity string
	if err := openReadOnly(t, dbPath).QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %q, %v", integrity, err)
	}
}

// TestWritesAnswer503WhileFilesCannotGrow lowers keyd's RLIMIT_FSIZE to
// zero while it runs, so every write SQLite makes fails (EFBIG, which SQLite
// reports as SQLITE_IOERR_WRITE, or SQLITE_FULL for a short write), as on a
// full disk. Writes must answer 503 STORAGE_UNAVAILABLE and change nothing,
// validation must keep answering, a webhook delivery that cannot be recorded
// must not be re-sent in a loop, and once the limit is raised again keyd
// must take writes without a restart.
func TestWritesAnswer503WhileFilesCannotGrow(t *testing.T) {
	bin := buildKeyd(t)
	dbPath := filepath.Join(t.TempDir(), "keyd.db")
	var hits atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			<-release // the first delivery is held until the files cannot grow
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	k := startKeyd(t, bin, dbPath)
	pid := k.cmd.Process.Pid
	s := newStorageScenario(t, k, srv.URL)
	waitUntil(t, "the alias.created delivery to arrive", 20*time.Second, func() bool { return hits.Load() == 1 })

	setFileSizeLimit(t, pid, 0)
	close(release) // its attempt cannot be recorded now
	s.expectUnavailable(t)
	cpuBefore := cpuTime(t, pid)
	time.Sleep(2 * time.Second)
	if used := cpuTime(t, pid) - cpuBefore; used > time.Second/2 {
		t.Fatalf("keyd used %v of CPU in 2s idle while it cannot write: spinning", used)
	}
	if n := hits.Load(); n > 2 {
		t.Fatalf("the webhook was sent %d times in 2s while its attempts could not be recorded", n)
	}
	select {
	case <-k.done:
		t.Fatal("keyd exited")
	default:
	}

	setFileSizeLimit(t, pid, noFileSizeLimit)
	s.expectRecovered(t)
	waitUntil(t, "the held webhook to be recorded as delivered", 20*time.Second, func() bool {
		var out struct{ Messages []struct{ Status string } }
		var hooks struct{ Webhooks []struct{ ID string } }
		s.lc.mustDo(t, "GET", "/v1/webhooks", s.key, false, nil, &hooks)
		s.lc.mustDo(t, "GET", "/v1/webhooks/"+hooks.Webhooks[0].ID+"/deliveries?limit=100", s.key, false, nil, &out)
		for _, m := range out.Messages {
			if m.Status != "delivered" {
				return false
			}
		}
		return len(out.Messages) == 2
	})
	s.stopAndCheck(t, dbPath)
	if !strings.Contains(k.stderr.String(), "storage unavailable") {
		t.Fatalf("the log does not say why writes failed:\n%s", k.stderr)
	}
}

// TestWritesAnswer503OnAFullFilesystem puts the database on a small tmpfs,
// fills it, and frees it again. It needs to mount a filesystem (root with
// CAP_SYS_ADMIN), and is skipped where that is not allowed.
func TestWritesAnswer503OnAFullFilesystem(t *testing.T) {
	bin := buildKeyd(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "keyd-test", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); TestWritesAnswer503WhileFilesCannotGrow covers a full disk", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() }) // after keyd is killed (cleanups run last first)
	dbPath := filepath.Join(dir, "keyd.db")
	k := startKeyd(t, bin, dbPath)
	s := newStorageScenario(t, k, "")

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs: %v", err)
			}
			break
		}
	}
	f.Close()
	// SQLite reuses the room its WAL already has, so some writes still fit;
	// the full disk shows within a few hundred.
	full := false
	for i := 0; i < 2000 && !full; i++ {
		a, err := s.lc.do(context.Background(), "PATCH", "/v1/aliases/"+s.aliasID, s.key, false, map[string]any{"name": "before " + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case a.status == http.StatusServiceUnavailable && a.code() == "STORAGE_UNAVAILABLE":
			full = true
		case a.status != 200:
			t.Fatalf("update alias on a filling disk: %s", a)
		}
	}
	if !full {
		t.Fatal("2000 writes fitted on a full filesystem")
	}
	s.expectUnavailable(t)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.expectRecovered(t)
	s.stopAndCheck(t, dbPath)
}

// TestWritesAnswer503WhileTheDatabaseIsImmutable makes the database file and
// its WAL immutable (chattr +i) while keyd has them open: writes through the
// open descriptors then fail with EPERM, which SQLite reports as
// SQLITE_IOERR_WRITE, as for a database that has become read-only under a
// running keyd. (A filesystem cannot be remounted read-only while a file on
// it is open for writing, so this is the closest the OS allows.) It needs
// CAP_LINUX_IMMUTABLE and a filesystem with the attribute, and is skipped
// elsewhere.
func TestWritesAnswer503WhileTheDatabaseIsImmutable(t *testing.T) {
	bin := buildKeyd(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "keyd.db")
	k := startKeyd(t, bin, dbPath)
	s := newStorageScenario(t, k, "")

	files := []string{dbPath, dbPath + "-wal"}
	chattr := func(flag string) error {
		out, err := exec.Command("chattr", append([]string{flag}, files...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("chattr %s: %v: %s", flag, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := chattr("+i"); err != nil {
		t.Skipf("cannot make files immutable here (%v)", err)
	}
	t.Cleanup(func() { chattr("-i") }) // so the temp dir can be removed
	s.expectUnavailable(t)
	if err := chattr("-i"); err != nil {
		t.Fatal(err)
	}
	s.expectRecovered(t)
	s.stopAndCheck(t, dbPath)
	log := k.stderr.String()
	if !strings.Contains(log, "storage unavailable") {
		t.Fatalf("the log does not say why writes failed:\n%s", log)
	}
	t.Logf("as logged: %s", strings.SplitN(log, "\n", 2)[0])
}
