// Package pgtest starts a private PostgreSQL server for a test binary, so
// that tests of keyd's PostgreSQL code run against the real thing: its own
// initdb in a temporary folder, a free loopback port, no fsync, and a fresh
// database for each test so that tests may run in parallel.
//
// A package's tests use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.Database(t) // postgres://... of a new, empty database
//		...
//	}
//
// The server binaries come from Debian's postgresql package
// (/usr/lib/postgresql/<version>/bin), or from initdb and postgres on PATH;
// `make test-postgres` installs the package when they are missing.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// MinVersion is the oldest PostgreSQL keyd supports.
const MinVersion = 15

// startTimeout bounds how long a new server may take to accept
// connections; a slow, busy machine takes a few seconds.
const startTimeout = 60 * time.Second

// osUser runs the server when the tests run as root: PostgreSQL refuses to
// run as root, and Debian's package creates this user.
const osUser = "postgres"

var errNotInstalled = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or on PATH: run make test-postgres, which installs Debian's postgresql package")

// Server is a running private PostgreSQL server.
type Server struct {
	// URL reaches the server's postgres database as its superuser.
	URL string

	dir      string        // temporary folder: data, socket, log
	user     string        // the database superuser
	host     string        // 127.0.0.1
	port     int           // loopback port
	cmd      *exec.Cmd     // the postmaster
	exited   chan error    // the postmaster's exit
	release  chan struct{} // lets the goroutine that started the postmaster go
	dbs      atomic.Int64  // names the databases Database makes
	settings []string      // given to Start, after the defaults
}

// Start initialises a cluster in a new temporary folder and starts a server
// on a free loopback port; Stop stops it and removes the folder. Settings
// ("name=value") are given to the server after its own and override them:
// a benchmark turns durability back on with "fsync=on" and the like.
func Start(settings ...string) (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	removeStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{dir: dir, host: "127.0.0.1", settings: settings}
	cred, err := s.credential()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.initdb(bin, cred); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A free port can be taken by another process between the probe and
	// the server's bind: try again on another.
	for attempt := 1; ; attempt++ {
		err = s.start(bin, cred, 0)
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.URL = s.url("postgres")
	return s, nil
}

// dirPrefix names the temporary folders; ownerFile in each holds the
// process id of the test binary that made it.
const (
	dirPrefix = "keyd-pgtest-"
	ownerFile = "owner.pid"
)

// removeStale removes the folders of test binaries that died without
// stopping their server (a panic, a kill): the kernel killed the server
// with them, but could not remove its files.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not one of ours, or being made
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		os.RemoveAll(dir)
	}
}

// findBin returns the folder of the newest installed server binaries.
func findBin() (string, error) {
	var dirs []string
	if found, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(found) > 0 {
		sort.Slice(found, func(i, j int) bool { return binVersion(found[i]) > binVersion(found[j]) })
		dirs = append(dirs, found...)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			continue
		}
		out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
		if err != nil {
			continue
		}
		v := parseVersion(string(out))
		if v < MinVersion {
			return "", fmt.Errorf("pgtest: %s is PostgreSQL %d; keyd needs %d or newer", dir, v, MinVersion)
		}
		return dir, nil
	}
	return "", errNotInstalled
}

// binVersion reads the major version from a /usr/lib/postgresql/<v>/bin path.
func binVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// parseVersion reads the major version from `postgres --version`.
func parseVersion(out string) int {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// credential returns whom initdb and the server run as: the postgres system
// user when the tests run as root (the folder is made theirs), otherwise
// the current user.
func (s *Server) credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, err
		}
		s.user = u.Username
		return nil, nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL refuses to run as root; the %q user it would run as: %w (Debian's postgresql package creates it: run make test-postgres)", osUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(s.dir, uid, gid); err != nil {
		return nil, err
	}
	s.user = osUser
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) initdb(bin string, cred *syscall.Credential) error {
	// The C locale compares text byte by byte, as SQLite does.
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", s.user,
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

// start runs the postmaster on port, a free one when 0, and waits until it
// accepts connections.
func (s *Server) start(bin string, cred *syscall.Credential, port int) error {
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return err
		}
	}
	s.port = port
	logPath := filepath.Join(s.dir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if cred != nil {
		if err := logFile.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", s.dataDir(),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses="+s.host,
		"-c", "unix_socket_directories="+s.dir,
		// Durability is not what tests test: a crash loses only a test run.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	)
	for _, setting := range s.settings {
		cmd.Args = append(cmd.Args, "-c", setting)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = procAttr(cred)

	// The kernel ties the server's life to the thread that started it
	// (procAttr's parent-death signal): start it from a thread no other
	// goroutine uses, which lives until Stop, so that the server dies with
	// the test binary however that ends, and not before.
	started := make(chan error)
	// This run's channels: after a Pause, the next run's replace them.
	exited, release := make(chan error, 1), make(chan struct{})
	s.exited, s.release = exited, release
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
		<-release
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.cmd = cmd

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.url("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case exitErr := <-s.exited:
			close(s.release)
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgtest: postgres exited before accepting connections (%v):\n%s", exitErr, log)
		case <-ctx.Done():
			s.kill()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgtest: postgres did not accept connections within %s (%v):\n%s", startTimeout, err, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) url(database string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", s.user, s.host, s.port, database)
}

// freePort returns a loopback port no one listened on a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Pause shuts the server down as an outage would, keeping its data: open
// sessions are ended and new connections refused until Resume.
func (s *Server) Pause() error {
	if s.cmd == nil {
		return errors.New("pgtest: the server is not running")
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		close(s.release)
	case <-time.After(30 * time.Second):
		s.kill()
	}
	s.cmd = nil
	return nil
}

// Resume starts the server Pause stopped again, on the same port and data.
func (s *Server) Resume() error {
	bin, err := findBin()
	if err != nil {
		return err
	}
	cred, err := s.credential()
	if err != nil {
		return err
	}
	return s.start(bin, cred, s.port)
}

// Stop shuts the server down (a fast shutdown: open sessions are ended),
// kills its process group if it has not gone within a while, and removes
// its folder. It may be called more than once.
func (s *Server) Stop() error {
	if s.cmd == nil { // stopped already, or paused
		return os.RemoveAll(s.dir)
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case err = <-s.exited:
		close(s.release)
		if err != nil {
			err = fmt.Errorf("pgtest: postgres exited with %w", err)
		}
	case <-time.After(30 * time.Second):
		s.kill()
		err = errors.New("pgtest: postgres did not shut down within 30s; killed")
	}
	s.cmd = nil
	return errors.Join(err, os.RemoveAll(s.dir))
}

// kill ends the server's whole process group at once and waits for it.
func (s *Server) kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	close(s.release)
}

// Database creates a new, empty database for t and returns its URL; it is
// dropped when t ends.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	return s.create(t, "")
}

// Copy creates a new database for t holding what the server's database at
// url holds, and returns its URL; it is dropped when t ends. No one may be
// connected to the database at url.
func (s *Server) Copy(t testing.TB, url string) string {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s.create(t, strings.TrimPrefix(u.Path, "/"))
}

// create creates a database for t, a copy of template if it is not "".
func (s *Server) create(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	url, err := s.createDatabase(name, template)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, s.URL)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		// FORCE ends sessions a test left open.
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return url
}

// CreateDatabase creates a new, empty database called name and returns its
// URL, for programs other than tests (the cluster benchmark); it lives
// until the server stops.
func (s *Server) CreateDatabase(name string) (string, error) { return s.createDatabase(name, "") }

// createDatabase creates the database name, a copy of template if it is
// not "", and returns its URL.
func (s *Server) createDatabase(name, template string) (string, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		create += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.url(name), nil
}

// shared is the server Main starts for the package's tests.
var shared *Server

// Main starts a server, runs the package's tests and stops the server,
// also when a test fails; a panic kills the server with the test binary.
// Call it from TestMain.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	shared = s
	defer func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop:", err)
		}
	}()
	return m.Run()
}

// Database creates a new, empty database on the server Main started and
// returns its URL; it is dropped when t ends.
func Database(t testing.TB) string {
	t.Helper()
	if shared == nil {
		t.Fatal("pgtest: no server: call pgtest.Main(m) from the package's TestMain")
	}
	return shared.Database(t)
}

// Copy creates a new database on the server Main started holding what the
// database at url (on that server, with no one connected) holds, and
// returns its URL; it is dropped when t ends.
func Copy(t testing.TB, url string) string {
	t.Helper()
	if shared == nil {
		t.Fatal("pgtest: no server: call pgtest.Main(m) from the package's TestMain")
	}
	return shared.Copy(t, url)
}

// Connect opens a connection to the database at url, closed when t ends.
func Connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
