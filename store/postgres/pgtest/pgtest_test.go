//go:build postgres

package pgtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// Two tests' databases share nothing: a table made in one is not in the
// other, and each is on the server Main started, as an unprivileged user.
func TestDatabasesAreIndependent(t *testing.T) {
	ctx := context.Background()
	urlA, urlB := Database(t), Database(t)
	if urlA == urlB {
		t.Fatalf("both databases are %s", urlA)
	}
	a, b := Connect(t, urlA), Connect(t, urlB)
	if _, err := a.Exec(ctx, `CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('a')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 't'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("table t in the second database: %d, %v", n, err)
	}
	if _, err := b.Exec(ctx, `CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('b'), ('b')`); err != nil {
		t.Fatalf("the same table in the second database: %v", err)
	}
	if err := a.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("first database's t has %d rows, %v; want 1", n, err)
	}

	var version int
	if err := a.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < MinVersion*10000 {
		t.Fatalf("server version %d, want %d or newer", version, MinVersion)
	}
	var fsync string
	if err := a.QueryRow(ctx, `SHOW fsync`).Scan(&fsync); err != nil || fsync != "off" {
		t.Fatalf("fsync %q, %v; want off", fsync, err)
	}
}

// A copy holds the rows of its template and is a database of its own: what
// is written to it afterwards is not in the template.
func TestCopyHoldsTheTemplatesRows(t *testing.T) {
	ctx := context.Background()
	src := Database(t)
	conn, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('a'), ('b')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx) // no one may be connected to a template
	dst := Copy(t, src)
	if dst == src {
		t.Fatalf("the copy is the template, %s", dst)
	}
	c := Connect(t, dst)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the copy's t has %d rows, %v; want 2", n, err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO t VALUES ('c')`); err != nil {
		t.Fatal(err)
	}
	if err := Connect(t, src).QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the template's t has %d rows after a write to the copy, %v; want 2", n, err)
	}
}

// A database is dropped when its test ends.
func TestDatabaseDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("uses", func(t *testing.T) {
		conn := Connect(t, Database(t))
		if err := conn.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	conn := Connect(t, shared.URL)
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %q still there after its test: %d, %v", name, n, err)
	}
}

// A server of its own, stopped: no connection, no process, no folder.
func TestStopEndsServer(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if s.URL == shared.URL {
		t.Fatalf("second server at the first's URL %s", s.URL)
	}
	conn := Connect(t, s.URL) // left open: Stop must not wait for it
	var one int
	if err := conn.QueryRow(context.Background(), `SELECT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
	pid := s.cmd.Process.Pid
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("postmaster %d still there after Stop: %v", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process group %d still there after Stop: %v", pid, err)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("folder %s still there after Stop: %v", s.dir, err)
	}
	if c, err := pgx.Connect(context.Background(), s.URL); err == nil {
		c.Close(context.Background())
		t.Fatalf("connected to %s after Stop", s.URL)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

// The folder of a test binary that died without Stop is removed by the
// next Start; a live binary's folder stays.
func TestStaleFoldersRemoved(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	folder := func(owner int) string {
		dir, err := os.MkdirTemp("", dirPrefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(owner)), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	stale, live := folder(dead.Process.Pid), folder(os.Getpid())
	removeStale()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("folder of dead process %d still there: %v", dead.Process.Pid, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("folder of this live process removed: %v", err)
	}
	if _, err := os.Stat(shared.dir); err != nil {
		t.Fatalf("the running server's folder removed: %v", err)
	}
}

// A paused server refuses connections and keeps its data; resumed, it
// serves them again at the same URL; stopped while paused, its folder goes.
func TestPauseAndResume(t *testing.T) {
	ctx := context.Background()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn := Connect(t, s.URL)
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, s.URL); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a paused server")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := Connect(t, s.URL).QueryRow(ctx, `SELECT n FROM kept`).Scan(&n); err != nil || n != 7 {
		t.Fatalf("after resuming: %d, %v; want the row kept", n, err)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("folder %s still there after Stop: %v", s.dir, err)
	}
}

// Settings given to Start override the server's own (durability back on,
// for a benchmark), and CreateDatabase makes a database that outlives any
// test, under the name asked for.
func TestStartSettingsAndCreateDatabase(t *testing.T) {
	s, err := Start("fsync=on", "synchronous_commit=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	url, err := s.CreateDatabase("bench")
	if err != nil {
		t.Fatal(err)
	}
	conn := Connect(t, url)
	ctx := context.Background()
	var name, fsync, syncCommit string
	if err := conn.QueryRow(ctx, `SELECT current_database(), current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&name, &fsync, &syncCommit); err != nil {
		t.Fatal(err)
	}
	if name != "bench" || fsync != "on" || syncCommit != "on" {
		t.Fatalf("database %q, fsync %q, synchronous_commit %q; want bench, on, on", name, fsync, syncCommit)
	}
	if _, err := s.CreateDatabase("bench"); err == nil {
		t.Fatal("a second database of the same name was created")
	}
}
