package pluginapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// The ShortPixel-style key check: POST (or GET) /v2/api-status.php, as the
// ShortPixel Image Optimizer plugin and the plugins written after it send
// it from "Save settings & validate". It is answered by the same decision
// as POST /v1/validate (judgeKey), translated to that protocol:
//
//   - the plugin takes anything but a 200 with a JSON body for a network
//     failure, so every answer about the key is a 200;
//   - Status.Code 2 means the key is valid; any other code is a refusal,
//     and Status.Message is shown to the site owner in an admin notice;
//   - credits: keyd's pool does not renew monthly, so it is reported as
//     one-time credits (APICallsQuotaOneTime = the pool,
//     APICallsMadeOneTime = 0) and the monthly figures are 0. The plugin
//     adds up quota minus made of both, which gives the pool.
//
// The site's own HTTP credentials (user, pass), which the plugin sends when
// the site is behind HTTP authentication, are never read into anything:
// not stored, logged or echoed.

// Status codes of the protocol. The plugin's source names -401 (the key is
// not valid); -400 and -429 are keyd's, negative as the protocol wants.
const (
	spioValid       = 2
	spioBadRequest  = -400
	spioInvalidKey  = -401
	spioRateLimited = -429
)

// spioStatus is the answer's Status object; Reason is keyd's own code for
// the outcome (VALID, EXPIRED, ...), the same /v1/validate answers.
type spioStatus struct {
	Code    int    `json:"Code"`
	Message string `json:"Message"`
	Reason  string `json:"Reason"`
}

// spioAnswer is the body of every answer about a key. The plugin reads the
// credit fields and DateSubscription only when Status.Code is 2; they are
// sent (as 0 and null) with refusals too, so that any client of the
// protocol finds the fields it expects.
type spioAnswer struct {
	Status               spioStatus `json:"Status"`
	APICallsMade         int64      `json:"APICallsMade"`
	APICallsQuota        int64      `json:"APICallsQuota"`
	APICallsMadeOneTime  int64      `json:"APICallsMadeOneTime"`
	APICallsQuotaOneTime int64      `json:"APICallsQuotaOneTime"`
	// DateSubscription is when a monthly subscription renews; keyd's credits
	// do not renew, so it is null.
	DateSubscription *string `json:"DateSubscription"`
}

// spioFields are the request fields read; the protocol's others
// (useragent, ImagesCount, ThumbsCount, user, pass) are ignored.
const (
	spioKey         = "key"
	spioDomainCheck = "DomainCheck" // the site's URL, sent when validating
	spioHost        = "host"        // the site's host, sent always
	spioInfo        = "Info"        // "<WordPress version>|<PHP version>"
)

// handleSPIOStatus is /v2/api-status.php (and /v2/api-status): the fields
// come as a form in a POST or in the query string of a GET, the plugin's
// fallback when POSTs fail.
func (s *server) handleSPIOStatus(c *gin.Context) {
	if err := c.Request.ParseForm(); err != nil {
		s.spioAnswer(c, spioBadRequest, toAPIError(badRequest("the request is not a valid form")), 0)
		return
	}
	form := c.Request.Form
	site := form.Get(spioDomainCheck)
	if site == "" {
		site = form.Get(spioHost)
	}
	wpVersion, _, _ := strings.Cut(form.Get(spioInfo), "|")
	req := validateRequest{Key: form.Get(spioKey), Site: site, WPVersion: wpVersion}
	if !plainValid(&req) {
		if err := s.validateRequest(req); err != nil {
			ae := toAPIError(err)
			code := spioBadRequest
			if ae.Code == codeMalformed {
				code = spioInvalidKey
			}
			s.spioAnswer(c, code, ae, 0)
			return
		}
	}
	v, ae, _ := s.judgeKey(c, &req)
	switch {
	case ae == nil:
		s.spioAnswer(c, spioValid, nil, v.Credits)
	case ae.Code == codeRateLimited:
		s.spioAnswer(c, spioRateLimited, ae, 0)
	default:
		s.spioAnswer(c, spioInvalidKey, ae, 0)
	}
}

// spioAnswer writes the protocol's answer, always a 200 (see above).
func (s *server) spioAnswer(c *gin.Context, code int, ae *apiError, credits int64) {
	status := spioStatus{Code: code, Message: "the key is valid", Reason: codeValid}
	if ae != nil {
		status.Message, status.Reason = ae.Message, ae.Code
	}
	body, err := json.Marshal(spioAnswer{Status: status, APICallsQuotaOneTime: credits})
	if err != nil {
		writeError(c, err)
		return
	}
	writeValidateBody(c, http.StatusOK, body)
}
