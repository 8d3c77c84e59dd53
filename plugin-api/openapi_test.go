package pluginapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"keyd/store"
	"keyd/store/storetest"
)

// openapiOperation is one operation of openapi.yaml: a path and a method.
type openapiOperation struct {
	Method  string // upper case, as gin lists routes
	Path    string // OpenAPI form: /v1/aliases/{id}
	Pending bool   // x-keyd-pending: true, specified but not served yet
}

func (o openapiOperation) String() string { return o.Method + " " + o.Path }

var openapiMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openapiIndent is the number of leading spaces of a line.
func openapiIndent(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

// openapiParseOperations reads the operations under paths: with a line-based
// reader of the document's layout: paths are "  /path:" at two spaces,
// methods "    get:" at four, and an operation's own keys at six.
func openapiParseOperations(doc []byte) ([]openapiOperation, error) {
	var (
		ops     []openapiOperation
		inPaths bool
		path    string
		current = -1 // index in ops of the operation being read
		seen    = map[string]bool{}
	)
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasPrefix(line, "\t") {
			return nil, fmt.Errorf("line %d: indented with a tab", n)
		}
		indent := openapiIndent(line)
		if indent == 0 {
			inPaths = trimmed == "paths:"
			path, current = "", -1
			continue
		}
		if !inPaths {
			continue
		}
		switch indent {
		case 2:
			if !strings.HasPrefix(trimmed, "/") || !strings.HasSuffix(trimmed, ":") {
				return nil, fmt.Errorf("line %d: %q is not a path under paths:", n, trimmed)
			}
			path, current = strings.TrimSuffix(trimmed, ":"), -1
		case 4:
			current = -1
			key, rest, _ := strings.Cut(trimmed, ":")
			if !slices.Contains(openapiMethods, key) {
				continue // parameters:, summary: and the like
			}
			if path == "" {
				return nil, fmt.Errorf("line %d: method %s outside a path", n, key)
			}
			if strings.TrimSpace(rest) != "" {
				return nil, fmt.Errorf("line %d: operation %s %s is not a block", n, key, path)
			}
			op := openapiOperation{Method: strings.ToUpper(key), Path: path}
			if seen[op.String()] {
				return nil, fmt.Errorf("line %d: %s documented twice", n, op)
			}
			seen[op.String()] = true
			ops = append(ops, op)
			current = len(ops) - 1
		case 6:
			if current >= 0 && strings.HasPrefix(trimmed, "x-keyd-pending:") {
				v := strings.TrimSpace(strings.TrimPrefix(trimmed, "x-keyd-pending:"))
				switch v {
				case "true":
					ops[current].Pending = true
				case "false":
				default:
					return nil, fmt.Errorf("line %d: x-keyd-pending must be true or false, not %q", n, v)
				}
			}
		}
	}
	return ops, sc.Err()
}

// openapiPathFromGin turns gin's /v1/aliases/:id (or *rest) into /v1/aliases/{id}.
func openapiPathFromGin(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// openapiRouter builds the real router over a real store.
func openapiRouter(t *testing.T) http.Handler {
	t.Helper()
	dsn := storetest.DSN(t)
	db, err := store.Open(context.Background(), dsn, StoreOptions(dsn)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h, err := New(db, Config{AdminToken: strings.Repeat("a", 32)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func openapiDocument(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestOpenAPIDocumentsEveryRoute checks that openapi.yaml and the router
// agree: every route is documented, and every documented operation is
// served unless it is marked x-keyd-pending.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	ops, err := openapiParseOperations(openapiDocument(t))
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if len(ops) == 0 {
		t.Fatal("openapi.yaml documents no operation")
	}
	documented := map[string]openapiOperation{}
	for _, op := range ops {
		documented[op.String()] = op
	}

	engine, ok := openapiRouter(t).(*gin.Engine)
	if !ok {
		t.Fatal("New does not return a *gin.Engine")
	}
	served := map[string]bool{}
	for _, r := range engine.Routes() {
		if consoleRoute(r.Path) {
			continue
		}
		op := openapiOperation{Method: r.Method, Path: openapiPathFromGin(r.Path)}
		served[op.String()] = true
		if _, ok := documented[op.String()]; !ok {
			t.Errorf("%s (route %s %s) is served but not documented in openapi.yaml", op, r.Method, r.Path)
		}
	}
	pending := 0
	for _, op := range ops {
		if op.Pending {
			pending++
			continue
		}
		if !served[op.String()] {
			t.Errorf("%s is documented in openapi.yaml but not served (mark it x-keyd-pending: true if it is yet to come)", op)
		}
	}
	t.Logf("%d routes served, %d operations documented (%d pending)", len(served), len(ops), pending)
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	h := openapiRouter(t)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d %s", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
		t.Errorf("Content-Type = %q, want application/yaml", ct)
	}
	if !bytes.Equal(w.Body.Bytes(), openapiDocument(t)) {
		t.Error("the served document differs from openapi.yaml")
	}
	if !bytes.HasPrefix(w.Body.Bytes(), []byte("openapi: 3.0.3\n")) {
		t.Errorf("the document does not start with openapi: 3.0.3: %.40q", w.Body.String())
	}
}

// TestOpenAPIOperationReader pins the line-based reader's understanding of
// the document's layout.
func TestOpenAPIOperationReader(t *testing.T) {
	doc := `openapi: 3.0.3
info:
  title: x
  description: |
    get:
paths:
  /a:
    parameters:
      - name: x
    get:
      summary: a
      responses:
        "200":
          description: ok
          x-keyd-pending: true
    post:
      x-keyd-pending: true
  /b/{id}:
    delete:
      operationId: d

components:
  schemas:
    get:
      type: object
`
	ops, err := openapiParseOperations([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []openapiOperation{
		{Method: "GET", Path: "/a"},
		{Method: "POST", Path: "/a", Pending: true},
		{Method: "DELETE", Path: "/b/{id}"},
	}
	if !slices.Equal(ops, want) {
		t.Errorf("got %v, want %v", ops, want)
	}

	for _, bad := range []string{
		"paths:\n  /a:\n    get:\n      x: 1\n    get:\n      x: 2\n",
		"paths:\n  a:\n    get:\n      x: 1\n",
		"paths:\n  /a:\n    get:\n      x-keyd-pending: yes\n",
	} {
		if _, err := openapiParseOperations([]byte(bad)); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}

	for in, want := range map[string]string{
		"/v1/aliases/:id":            "/v1/aliases/{id}",
		"/v1/aliases/:id/deactivate": "/v1/aliases/{id}/deactivate",
		"/admin/v1/plans/:name":      "/admin/v1/plans/{name}",
		"/files/*rest":               "/files/{rest}",
		"/healthz":                   "/healthz",
	} {
		if got := openapiPathFromGin(in); got != want {
			t.Errorf("openapiPathFromGin(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOpenAPIDocumentIsValid loads openapi.yaml with an OpenAPI library and
// validates it whole: YAML that parses, every $ref resolving, every schema
// well formed. The line-based reader above checks only the operations.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiDocument(t))
	if err != nil {
		t.Fatalf("openapi.yaml does not load: %v", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
}
