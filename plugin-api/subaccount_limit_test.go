package pluginapi

import (
	"fmt"
	"sync"
	"testing"
)

func TestParallelSubaccountCreatesRespectThePlanLimit(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.accountWith("pro", 1000) // 5 subaccounts
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[string]int{}
	)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, out := a.do("POST", "/v1/subaccounts", key, map[string]any{
				"name": fmt.Sprintf("Client %d", i), "email": fmt.Sprintf("c%d@client.test", i)})
			mu.Lock()
			codes[fmt.Sprintf("%d %s", code, errorCode(out))]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if codes["201 "] != 5 || codes["403 SUBACCOUNT_LIMIT_REACHED"] != 15 || len(codes) != 2 {
		t.Fatalf("answers %v; want 5 created and 15 SUBACCOUNT_LIMIT_REACHED", codes)
	}
	_, out := a.do("GET", "/v1/account", key, nil)
	if subs := out["subaccounts"].(map[string]any); subs["used"] != 5.0 || subs["limit"] != 5.0 {
		t.Fatalf("subaccounts %v, want used 5 of 5", subs)
	}
	_, list := a.do("GET", "/v1/subaccounts", key, nil)
	if n := len(list["subaccounts"].([]any)); n != 5 {
		t.Fatalf("%d subaccounts listed, want 5", n)
	}
}
