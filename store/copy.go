package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"keyd/store/postgres"
	"keyd/store/sqlite"
)

// Copy copies every row of the keyd database at from into the database at
// to, of either engine (a SQLite file or a postgres:// URL): the way from
// one SQLite file to a PostgreSQL server that several replicas share.
//
// Both must be at this build's schema version: to is migrated first, and a
// source at another version is refused (keyd migrate brings it up). A
// destination that already holds accounts is refused: the copy fills an
// empty database, it never merges. The source is read in one snapshot
// (writes made to it meanwhile are not in the copy) and the destination is
// written in one transaction, table by table, parents before children, with
// every column kept as it is: ids, rowids and event numbers, key hashes,
// webhook secrets and receipt keys still sealed with the source's secret
// key. Before that transaction commits, the row counts of every table and a
// random sample of rows are compared with the source, and when the secret
// key is given (CopyOptions.SecretKey) every sealed value copied is opened
// with it; any difference rolls the whole copy back.
func Copy(ctx context.Context, from, to string, opts CopyOptions) (rep CopyReport, err error) {
	if from == to {
		return rep, errors.New("store: copy: the source and the destination are the same database")
	}
	if !IsPostgresURL(from) {
		// Opening a SQLite file that is not there would create it.
		if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("store: copy: no database at %s", from)
		}
	}
	// Errors name the databases, without a password.
	fromName, toName := RedactedDSN(from), RedactedDSN(to)
	if opts.Sample == 0 {
		opts.Sample = 100
	}

	srcEng, dstEng := engineFor(from), engineFor(to)
	srcW, src, err := srcEng.Open(from)
	if err != nil {
		return rep, err
	}
	srcW.Close()
	defer src.Close()
	version, err := copySourceVersion(ctx, src, fromName)
	if err != nil {
		return rep, err
	}
	rep.SchemaVersion = version

	// A SQLite file the copy creates is removed again if the copy fails.
	if !IsPostgresURL(to) {
		if _, statErr := os.Lstat(to); errors.Is(statErr, fs.ErrNotExist) {
			defer func() {
				if err != nil {
					for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
						os.Remove(to + suffix)
					}
				}
			}()
		}
	}

	// The destination's own migrations make its schema, and record it.
	d, err := Open(ctx, to, WithoutIndex())
	if err != nil {
		return rep, err
	}
	if err := d.Close(); err != nil {
		return rep, err
	}
	dst, dstR, err := dstEng.Open(to)
	if err != nil {
		return rep, err
	}
	dstR.Close()
	defer dst.Close()

	// One snapshot of the source: repeatable read on PostgreSQL, and a
	// SQLite read transaction sees one state of the file throughout.
	stx, err := src.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return rep, fmt.Errorf("store: copy: read %s: %w", fromName, err)
	}
	defer stx.Rollback()
	dtx, err := dst.BeginTx(ctx, nil)
	if err != nil {
		return rep, fmt.Errorf("store: copy: write %s: %w", toName, err)
	}
	defer dtx.Rollback()

	var accounts int64
	if err := dtx.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&accounts); err != nil {
		return rep, fmt.Errorf("store: copy: %w", err)
	}
	if accounts > 0 {
		return rep, fmt.Errorf("%w: %s already holds accounts (%d); copy into a new, empty database (create a new one, or drop and re-create this one)",
			ErrCopyDestinationNotEmpty, toName, accounts)
	}
	tables, err := copyColumns(ctx, srcEng.(copyEngine), stx, dstEng.(copyEngine), dtx)
	if err != nil {
		return rep, err
	}

	// The destination's migrations seeded some rows (the plans, the
	// one-row tables): the source's replace them. Children first.
	for _, t := range slices.Backward(tables) {
		if _, err := dtx.ExecContext(ctx, `DELETE FROM `+t.name); err != nil {
			return rep, fmt.Errorf("store: copy: empty %s: %w", t.name, err)
		}
	}
	for _, t := range tables {
		n, err := copyRows(ctx, stx, dtx, t)
		if err != nil {
			return rep, err
		}
		rep.Tables = append(rep.Tables, CopiedTable{Name: t.name, Rows: n})
	}
	last, err := srcEng.(copyEngine).Counters(ctx, stx)
	if err != nil {
		return rep, err
	}
	if err := dstEng.(copyEngine).MoveCounters(ctx, dtx, last); err != nil {
		return rep, err
	}

	for i, t := range tables {
		sampled, err := checkCopy(ctx, stx, dtx, t, rep.Tables[i].Rows, opts.Sample)
		if err != nil {
			return rep, err
		}
		rep.Tables[i].Sampled = sampled
	}
	if opts.SecretKey != nil {
		if rep.SealedOpened, err = openSealed(ctx, dtx, opts.SecretKey); err != nil {
			return rep, err
		}
		rep.KeyChecked = true
	}
	if err := dtx.Commit(); err != nil {
		return rep, fmt.Errorf("store: copy: commit %s: %w", toName, err)
	}
	return rep, nil
}

// CopyOptions tune Copy.
type CopyOptions struct {
	// SecretKey is the key the source's secrets are sealed with; when
	// given, every sealed value copied must open with it.
	SecretKey []byte
	// Sample is how many rows of each table, chosen at random, are
	// compared column by column after the copy; 0 means 100.
	Sample int
}

// CopyReport is what Copy copied and checked.
type CopyReport struct {
	SchemaVersion int
	Tables        []CopiedTable // in the order copied
	// KeyChecked is set when CopyOptions.SecretKey opened every sealed
	// value copied (SealedOpened of them).
	KeyChecked   bool
	SealedOpened int
}

// Rows is how many rows of the table named were copied.
func (r CopyReport) Rows(table string) int64 {
	for _, t := range r.Tables {
		if t.Name == table {
			return t.Rows
		}
	}
	return 0
}

// CopiedTable is one table Copy copied: its rows, the same number at both
// ends, and how many of them were compared column by column.
type CopiedTable struct {
	Name    string
	Rows    int64
	Sampled int
}

// copyEngine is what Copy needs of the engines at both ends, beyond engine.
type copyEngine interface {
	// Columns lists the database's tables (but schema_migrations) and
	// the kind of each declared column: integer, text, blob or real.
	Columns(ctx context.Context, tx *sql.Tx) (map[string]map[string]string, error)
	// Counters are the last values each table's self-numbering column
	// handed out (events.seq among them), even for rows no longer kept.
	Counters(ctx context.Context, tx *sql.Tx) (map[string]int64, error)
	// MoveCounters moves each self-numbering column past the highest value
	// it holds and past the table's value in last.
	MoveCounters(ctx context.Context, tx *sql.Tx, last map[string]int64) error
}

var (
	_ copyEngine = sqlite.Engine{}
	_ copyEngine = postgres.Engine{}
)

// copyTable is a table as Copy copies it.
type copyTable struct {
	name string
	// key is its primary key, by which rows are fetched to compare them.
	key []string
	// rowid is set for the tables ordered by SQLite's rowid (an explicit
	// column on PostgreSQL), whose rowids must be kept.
	rowid bool

	columns []string          // every column copied, rowid first when kept
	kinds   map[string]string // the kind of each column at the destination
}

// copyTables are the tables of the schema in the order they are copied,
// parents before children (accounts before their subaccounts by rowid). A
// migration that adds a table adds it here too: Copy refuses a database
// with a table it does not know, so that nothing is silently left behind.
var copyTables = []copyTable{
	{name: "plans", key: []string{"name"}, rowid: true},
	{name: "accounts", key: []string{"id"}, rowid: true},
	{name: "keys", key: []string{"id"}, rowid: true},
	{name: "events", key: []string{"seq"}},
	{name: "key_sites", key: []string{"key_id", "site"}},
	{name: "key_usage_daily", key: []string{"key_id", "day"}},
	{name: "key_last_used", key: []string{"key_id"}},
	{name: "key_spend", key: []string{"key_id"}},
	{name: "key_activations", key: []string{"key_id", "host"}},
	{name: "webhook_endpoints", key: []string{"id"}, rowid: true},
	{name: "webhook_messages", key: []string{"id"}, rowid: true},
	{name: "webhook_attempts", key: []string{"id"}},
	{name: "webhook_cursor", key: []string{"id"}},
	{name: "secret_key_check", key: []string{"id"}},
	{name: "usage_idempotency", key: []string{"account_id", "idem_key"}},
	{name: "receipt_keys", key: []string{"kid"}, rowid: true},
	{name: "console_sessions", key: []string{"token_hash"}},
	{name: "console_links", key: []string{"token_hash"}},
	{name: "unlogged_writes", key: []string{"id"}},
}

// notCopied are the tables of the schema that describe the processes
// serving a database rather than its data: the replicas serving it, which
// register themselves when they start, which replica last ran each
// scheduled job.
var notCopied = map[string]bool{"replicas": true, "job_runs": true}

// copySourceVersion is the source's schema version, which must be this
// build's.
func copySourceVersion(ctx context.Context, src *sql.DB, from string) (int, error) {
	var v sql.NullInt64
	if err := src.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: copy: %s is not a keyd database (no schema version): %w", from, err)
	}
	switch latest := LatestSchemaVersion(); {
	case int(v.Int64) < latest:
		return 0, fmt.Errorf("store: copy: %s is at schema version %d and this keyd's is %d: run keyd migrate --db %s first, then copy",
			from, v.Int64, latest, from)
	case int(v.Int64) > latest:
		return 0, fmt.Errorf("store: copy: %s is at schema version %d, newer than this keyd's %d: copy with the keyd that wrote it",
			from, v.Int64, latest)
	}
	return int(v.Int64), nil
}

// copyColumns reads the tables and columns of both databases, checks that
// they are copyTables' and that both ends have the same columns of the same
// kinds, and returns copyTables with their columns.
func copyColumns(ctx context.Context, srcEng copyEngine, stx *sql.Tx, dstEng copyEngine, dtx *sql.Tx) ([]copyTable, error) {
	srcCols, err := srcEng.Columns(ctx, stx)
	if err != nil {
		return nil, err
	}
	dstCols, err := dstEng.Columns(ctx, dtx)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	tables := slices.Clone(copyTables)
	for i := range tables {
		t := &tables[i]
		known[t.name] = true
		s, d := srcCols[t.name], dstCols[t.name]
		if s == nil || d == nil {
			return nil, fmt.Errorf("store: copy: table %s is missing from the source or the destination", t.name)
		}
		// rowid is declared on PostgreSQL and implicit on SQLite: it is
		// compared apart from the declared columns.
		for _, cols := range []map[string]string{s, d} {
			if _, declared := cols["rowid"]; declared && !t.rowid {
				return nil, fmt.Errorf("store: copy: table %s has a rowid column that copy does not keep (see copyTables)", t.name)
			}
			delete(cols, "rowid")
		}
		if !maps.Equal(s, d) {
			return nil, fmt.Errorf("store: copy: table %s has other columns at the source (%s) than at the destination (%s)",
				t.name, describeColumns(s), describeColumns(d))
		}
		t.columns = slices.Sorted(maps.Keys(d))
		t.kinds = d
		if t.rowid {
			t.columns = append([]string{"rowid"}, t.columns...)
			t.kinds["rowid"] = "integer"
		}
	}
	for _, cols := range []map[string]map[string]string{srcCols, dstCols} {
		for name := range cols {
			if !known[name] && !notCopied[name] {
				return nil, fmt.Errorf("store: copy: table %s is not one copy knows (see copyTables): it would be left behind", name)
			}
		}
	}
	return tables, nil
}

func describeColumns(cols map[string]string) string {
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(cols)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name + " " + cols[name])
	}
	return b.String()
}

// copyBatchValues bounds the values one INSERT carries (SQLite allows
// 32,766 parameters, PostgreSQL 65,535).
const copyBatchValues = 5000

// copyRows copies every row of t in the order of its rowid or primary key
// (so that parents come before their children within a table too), in
// multi-row INSERTs, and returns how many it copied.
func copyRows(ctx context.Context, stx, dtx *sql.Tx, t copyTable) (int64, error) {
	order := t.key
	if t.rowid {
		order = []string{"rowid"}
	}
	cols := strings.Join(t.columns, ", ")
	rows, err := stx.QueryContext(ctx, `SELECT `+cols+` FROM `+t.name+` ORDER BY `+strings.Join(order, ", "))
	if err != nil {
		return 0, fmt.Errorf("store: copy: read %s: %w", t.name, err)
	}
	defer rows.Close()

	perBatch := max(1, copyBatchValues/len(t.columns))
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.columns)), ", ") + ")"
	insert := func(n int) string {
		return `INSERT INTO ` + t.name + ` (` + cols + `) VALUES ` + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
	full, err := dtx.PrepareContext(ctx, insert(perBatch))
	if err != nil {
		return 0, fmt.Errorf("store: copy: write %s: %w", t.name, err)
	}
	defer full.Close()

	var copied int64
	batch := make([]any, 0, perBatch*len(t.columns))
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var err error
		if n := len(batch) / len(t.columns); n == perBatch {
			_, err = full.ExecContext(ctx, batch...)
		} else {
			_, err = dtx.ExecContext(ctx, insert(n), batch...)
		}
		if err != nil {
			return fmt.Errorf("store: copy: write %s: %w", t.name, err)
		}
		copied += int64(len(batch) / len(t.columns))
		batch = batch[:0]
		return nil
	}
	values, dests := scanDests(len(t.columns))
	for rows.Next() {
		if err := rows.Scan(dests...); err != nil {
			return 0, fmt.Errorf("store: copy: read %s: %w", t.name, err)
		}
		for i, v := range values {
			batch = append(batch, asKind(v, t.kinds[t.columns[i]]))
		}
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("store: copy: read %s: %w", t.name, err)
	}
	return copied, flush()
}

// scanDests are n values and the pointers to them that Scan fills.
func scanDests(n int) ([]any, []any) {
	values := make([]any, n)
	dests := make([]any, n)
	for i := range values {
		dests[i] = &values[i]
	}
	return values, dests
}

// asKind is a value read from either engine as the destination's column of
// kind stores it: SQLite keeps what it was given, so text read as bytes (or
// bytes as text) is turned into what the column holds.
func asKind(v any, kind string) any {
	switch x := v.(type) {
	case []byte:
		if kind == "text" {
			return string(x)
		}
		return bytes.Clone(x) // Scan's bytes are only valid until the next row
	case string:
		if kind == "blob" {
			return []byte(x)
		}
	}
	return v
}

// compareValue is a value normalised for comparing a row at both ends: blobs
// become strings of their bytes, marked apart from text.
func compareValue(v any, kind string) any {
	switch x := asKind(v, kind).(type) {
	case []byte:
		return blobValue(x)
	default:
		return x
	}
}

type blobValue string

// checkCopy compares t at both ends: the same number of rows (copied, the
// rows copyRows wrote) and, for up to sample rows chosen at random in the
// source, the same values in every column. It returns how many rows it
// compared.
func checkCopy(ctx context.Context, stx, dtx *sql.Tx, t copyTable, copied int64, sample int) (int, error) {
	var srcN, dstN int64
	if err := stx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name).Scan(&srcN); err != nil {
		return 0, fmt.Errorf("store: copy: count %s: %w", t.name, err)
	}
	if err := dtx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name).Scan(&dstN); err != nil {
		return 0, fmt.Errorf("store: copy: count %s: %w", t.name, err)
	}
	if srcN != copied || dstN != copied {
		return 0, fmt.Errorf("store: copy: %s has %d rows at the source, %d were copied and the destination has %d", t.name, srcN, copied, dstN)
	}

	cols := strings.Join(t.columns, ", ")
	rows, err := stx.QueryContext(ctx, `SELECT `+cols+` FROM `+t.name+` ORDER BY random() LIMIT ?`, sample)
	if err != nil {
		return 0, fmt.Errorf("store: copy: sample %s: %w", t.name, err)
	}
	var picked [][]any
	for rows.Next() {
		values, dests := scanDests(len(t.columns))
		if err := rows.Scan(dests...); err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: copy: sample %s: %w", t.name, err)
		}
		for i, v := range values {
			values[i] = compareValue(v, t.kinds[t.columns[i]])
		}
		picked = append(picked, values)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("store: copy: sample %s: %w", t.name, err)
	}

	where := strings.Join(t.key, " = ? AND ") + " = ?"
	lookup := `SELECT ` + cols + ` FROM ` + t.name + ` WHERE ` + where
	for _, want := range picked {
		var key []any
		for _, k := range t.key {
			i := slices.Index(t.columns, k)
			v := want[i]
			if b, ok := v.(blobValue); ok {
				v = []byte(b)
			}
			key = append(key, v)
		}
		got, dests := scanDests(len(t.columns))
		if err := dtx.QueryRowContext(ctx, lookup, key...).Scan(dests...); err != nil {
			return 0, fmt.Errorf("store: copy: %s row %v at the destination: %w", t.name, key, err)
		}
		for i, c := range t.columns {
			if g := compareValue(got[i], t.kinds[c]); g != want[i] {
				return 0, fmt.Errorf("store: copy: %s row %v: %s is %v at the source and %v at the destination", t.name, key, c, want[i], g)
			}
		}
	}
	return len(picked), nil
}

// openSealed opens every sealed value in the destination with key: the
// check value, webhook secrets (current and previous) and receipt signing
// keys, each where it is stored. It returns how many it opened.
func openSealed(ctx context.Context, tx *sql.Tx, key []byte) (int, error) {
	s, err := newSealer(key)
	if err != nil {
		return 0, err
	}
	queries := []struct {
		query string
		where func(string) string
	}{
		{`SELECT '', sealed FROM secret_key_check`, func(string) string { return keyCheckWhere }},
		{`SELECT id, secret FROM webhook_endpoints`, secretWhere},
		{`SELECT id, old_secret FROM webhook_endpoints WHERE old_secret IS NOT NULL`, secretWhere},
		{`SELECT kid, private_sealed FROM receipt_keys`, receiptKeyWhere},
	}
	opened := 0
	for _, q := range queries {
		rows, err := tx.QueryContext(ctx, q.query)
		if err != nil {
			return 0, fmt.Errorf("store: copy: read sealed values: %w", err)
		}
		for rows.Next() {
			var id string
			var sealed []byte
			if err := rows.Scan(&id, &sealed); err != nil {
				rows.Close()
				return 0, err
			}
			if _, err := s.open(sealed, q.where(id)); err != nil {
				rows.Close()
				return 0, fmt.Errorf("store: copy: the secret key given does not open the copied secrets (%w): give the source's key, the one in <db>.key or KEYD_SECRET_KEY", err)
			}
			opened++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
	}
	return opened, nil
}
