package postgres

import "testing"

// The store's SQL is written with SQLite's placeholders; PostgreSQL reads
// $n. Quoted text and comments keep their question marks.
func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT ? + ?`, `SELECT $1 + $2`},
		{`UPDATE accounts SET credits = credits - ?1, spent = spent + ?1 WHERE id = ?2`,
			`UPDATE accounts SET credits = credits - $1, spent = spent + $1 WHERE id = $2`},
		{`SELECT '?', ?, "odd?name" FROM t WHERE a = ?`, `SELECT '?', $1, "odd?name" FROM t WHERE a = $2`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{`SELECT /* ? */ ?`, `SELECT /* ? */ $1`},
		{`SELECT ?10, ?`, `SELECT $10, $1`},
		{`SELECT 'unterminated ?`, `SELECT 'unterminated ?`},
	} {
		if got := rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
