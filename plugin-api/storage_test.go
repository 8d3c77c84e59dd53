package pluginapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"keyd/store"
)

func TestStorageUnavailableIs503(t *testing.T) {
	cause := fmt.Errorf("%w: store: commit: database or disk is full", store.ErrStorageUnavailable)
	ae := toAPIError(fmt.Errorf("create alias: %w", cause))
	if ae.Status != http.StatusServiceUnavailable || ae.Code != codeStorage {
		t.Fatalf("got %d %s, want 503 %s", ae.Status, ae.Code, codeStorage)
	}
	if strings.Contains(ae.Message, "disk is full") || strings.Contains(ae.Message, "commit") {
		t.Fatalf("the cause leaked to the client: %q", ae.Message)
	}
}
