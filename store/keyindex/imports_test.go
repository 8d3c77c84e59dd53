package keyindex

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNoDatabase keeps validation away from the database by
// construction: the index, which is all validation reads, must not be able
// to reach database/sql or the SQLite driver, directly or through another
// package.
func TestImportsNoDatabase(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, dep := range deps {
		if dep == "database/sql" || strings.HasPrefix(dep, "database/sql/") || strings.Contains(dep, "sqlite") {
			t.Errorf("package keyindex depends on %s", dep)
		}
	}
}
