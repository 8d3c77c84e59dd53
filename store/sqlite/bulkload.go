package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// BeginBulkLoad readies the writer connection for keyd seed. Random inserts
// into the hash, id and account indexes touch pages all over the file: a
// large page cache keeps them in memory, and syncing only at the end
// (synthetic data can simply be seeded again after a power cut) keeps
// checkpoints from waiting on the disk. Every account is inserted before
// its keys, so checking foreign keys row by row would only cost time. The
// writer connection is the only one: its own settings are read first and
// put back by end, which also checkpoints the WAL.
func (Engine) BeginBulkLoad(ctx context.Context, writer *sql.DB) (end func(), err error) {
	var restore []string
	for _, name := range []string{"cache_size", "synchronous", "foreign_keys"} {
		var v int64
		if err := writer.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			return nil, err
		}
		restore = append(restore, fmt.Sprintf("PRAGMA %s = %d", name, v))
	}
	end = func() {
		ctx := context.WithoutCancel(ctx)
		for _, pragma := range restore {
			writer.ExecContext(ctx, pragma)
		}
		writer.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	for _, pragma := range []string{`PRAGMA cache_size = -262144`, `PRAGMA synchronous = OFF`, `PRAGMA foreign_keys = OFF`} {
		if _, err := writer.ExecContext(ctx, pragma); err != nil {
			end()
			return nil, err
		}
	}
	return end, nil
}
