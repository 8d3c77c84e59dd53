package pluginapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// Test keys: with Config.TestKeys (keyd serve --test-keys) keyd accepts a
// fixed set of keys, one for each answer of validate and usage, so that a
// plugin's author can see every message a site may get without an account
// in any state. Whatever the request says (once it is a well-formed
// request), each key gives its one answer; nothing is charged, counted or
// recorded, and no event is sent. README.md lists them in a table.
type testKey struct {
	key    string
	answer string // the answer it is named for

	validate *apiError // validate's answer; nil is VALID
	usage    *apiError // usage's answer; nil is 200, charging nothing
	credits  int64     // the pool VALID and usage report
	// expiresAt is sent with EXPIRED; rotation adds a rotation notice;
	// rateLimited sends the rate-limit headers of a spent limit.
	expiresAt   *time.Time
	rotation    bool
	rateLimited bool
}

// testKeyCredits is the pool every test key reports, except the one for
// INSUFFICIENT_CREDITS, whose pool is empty.
const testKeyCredits = 1000

// testKeyRateLimit is the per-minute limit the RATE_LIMITED key reports.
const testKeyRateLimit = 60

// testKeyExpiry is when the EXPIRED test key expired.
var testKeyExpiry = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Rotation notice of the ROTATION test key: replaced an hour before the
// request, with a grace that ends a day after the request.
const (
	testKeyReplacedAgo = time.Hour
	testKeyGraceLeft   = 24 * time.Hour
)

func testKeyError(status int, code, msg string) *apiError {
	return newError(status, code, "%s", msg)
}

// testKeyList is the set, in the order the README lists it. Every key is
// "test", what it answers, and zeros: 20 letters and digits.
var testKeyList = func() []*testKey {
	revoked := testKeyError(http.StatusUnauthorized, codeRevoked, "this key was reset; ask the account owner for the new key")
	expired := testKeyError(http.StatusUnauthorized, codeExpired, "this key expired on "+testKeyExpiry.Format(time.RFC3339))
	inactive := testKeyError(http.StatusUnauthorized, codeInactive, "this key was deactivated by the account owner")
	suspended := testKeyError(http.StatusUnauthorized, codeAccountSuspended, "the account this key belongs to is suspended")
	scope := testKeyError(http.StatusForbidden, codeScopeDenied, "this key may not be used for this scope")
	site := testKeyError(http.StatusForbidden, codeSiteNotAllowed, "this key is bound to other sites")
	siteLimit := siteUseError(&store.SiteLimitError{Used: 3, Limit: 3})
	limited := rateLimited(testKeyRateLimited)
	return []*testKey{
		{key: "testVALID00000000000", answer: codeValid, credits: testKeyCredits},
		{key: "testROTATION00000000", answer: "VALID with rotation", credits: testKeyCredits, rotation: true},
		{key: "testEXPIRED000000000", answer: codeExpired, validate: expired, usage: expired, expiresAt: &testKeyExpiry},
		{key: "testINACTIVE00000000", answer: codeInactive, validate: inactive, usage: inactive},
		{key: "testREVOKED000000000", answer: codeRevoked, validate: revoked, usage: revoked},
		{key: "testACCOUNTSUSPENDED", answer: codeAccountSuspended, validate: suspended, usage: suspended},
		{key: "testSCOPEDENIED00000", answer: codeScopeDenied, validate: scope, usage: scope},
		{key: "testSITENOTALLOWED00", answer: codeSiteNotAllowed, validate: site, usage: site},
		{key: "testSITELIMITREACHED", answer: codeSiteLimit, validate: siteLimit, usage: siteLimit},
		{key: "testRATELIMITED00000", answer: codeRateLimited, validate: limited, usage: limited, rateLimited: true},
		{key: "testINSUFFICIENTCRED", answer: codeInsufficient,
			usage: testKeyError(http.StatusPaymentRequired, codeInsufficient, "the pool has too few credits; nothing was charged")},
		{key: "testKEYSPENDLIMIT000", answer: codeKeySpendLimit, credits: testKeyCredits,
			usage: testKeyError(http.StatusPaymentRequired, codeKeySpendLimit,
				spendLimitMessage(store.Allowance{Limit: 500, Period: store.PeriodDay, Spent: 500}))},
	}
}()

// testKeyRateLimited is the verdict the RATE_LIMITED key reports: a limit
// of 60 a minute, all spent, one request allowed again in a minute.
var testKeyRateLimited = verdict{limit: testKeyRateLimit, reset: time.Minute, retryAfter: time.Minute}

var testKeys = func() map[string]*testKey {
	m := make(map[string]*testKey, len(testKeyList))
	for _, tk := range testKeyList {
		m[tk.key] = tk
	}
	return m
}()

// testKey returns the test key presented, when test keys are on.
func (s *server) testKey(key string) (*testKey, bool) {
	if !s.testKeys {
		return nil, false
	}
	tk, ok := testKeys[key]
	return tk, ok
}

// judge is judgeKey's decision for a test key: the answer it is named for,
// recording nothing.
func (tk *testKey) judge(c *gin.Context, now time.Time) (store.KeyView, *apiError, *time.Time) {
	if tk.rateLimited {
		testKeyRateLimited.setHeaders(c)
	}
	if tk.validate != nil {
		return store.KeyView{}, tk.validate, tk.expiresAt
	}
	v := store.KeyView{
		KeyID:         "key_7e57000000000000",
		Type:          store.KeyTypePrimary,
		Name:          "Test key",
		Hint:          tk.key[len(tk.key)-4:],
		Status:        store.KeyActive,
		Scopes:        testKeyScopes,
		AccountID:     "acc_7e57000000000000",
		AccountStatus: store.AccountActive,
		Plan:          "test",
		Credits:       tk.credits,
	}
	if tk.rotation {
		v.ReplacedAt = now.Add(-testKeyReplacedAgo).Unix()
		v.ValidUntil = now.Add(testKeyGraceLeft).Unix()
	}
	return v, nil, nil
}

var testKeyScopes = []string{"*"}

// answerUsage is POST /v1/usage for a test key.
func (tk *testKey) answerUsage(c *gin.Context, units int64) {
	if tk.rateLimited {
		testKeyRateLimited.setHeaders(c)
	}
	if tk.usage != nil {
		writeError(c, tk.usage)
		return
	}
	c.JSON(http.StatusOK, usageResponse{Credits: tk.credits, Charged: units})
}
