package store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEngineSpecificsStayInTheirPackage keeps what is particular to SQLite
// (its driver: connections, error codes, the backup API) in store/sqlite, so
// that a second engine is a package beside it rather than changes all over
// the store: the store itself imports no database driver.
func TestEngineSpecificsStayInTheirPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := strings.Fields(string(out))
	if len(imports) == 0 {
		t.Fatal("go list listed no imports")
	}
	for _, imp := range imports {
		if strings.Contains(imp, "sqlite3") || strings.Contains(imp, "pgx") {
			t.Errorf("package store imports the driver %s itself", imp)
		}
	}
}
