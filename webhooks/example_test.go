package webhooks_test

import (
	"fmt"
	"net/http"
	"time"

	"keyd/webhooks"

	"keyd/store"
)

// The test vector published with the Standard Webhooks spec.
func ExampleSign() {
	sig, err := webhooks.Sign(
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`),
	)
	fmt.Println(sig, err)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= <nil>
}

// A receiver checks a message with its copy of the endpoint's secret.
func ExampleVerify() {
	secret := webhooks.NewSecret()
	now := time.Unix(1735689600, 0)
	body, _ := store.NewWebhookBody(store.EventAliasCreated, 1, now, map[string]string{"alias_id": "key_7Hq2", "hint": "x9Qa"})
	sig, _ := webhooks.SignatureHeader([]string{secret}, "msg_1", now, body)

	h := http.Header{}
	h.Set(webhooks.HeaderID, "msg_1")
	h.Set(webhooks.HeaderTimestamp, "1735689600")
	h.Set(webhooks.HeaderSignature, sig)
	fmt.Println(webhooks.Verify(secret, h, body, now.Add(time.Minute), 0))
	fmt.Println(webhooks.Verify(secret, h, body, now.Add(time.Hour), 0))
	// Output:
	// <nil>
	// webhooks: webhook-timestamp is too far from the current time
}
