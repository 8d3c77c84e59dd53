package webhooks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// UserAgent is sent with every delivery so receivers can tell keyd apart.
const UserAgent = "keyd-webhooks/1"

// ResponseLimit is how much of a receiver's answer an [Attempt] keeps.
const ResponseLimit = 1 << 10

// drainLimit is how much more of an answer is read and thrown away so the
// connection can be reused; a longer answer is cut off by closing it.
const drainLimit = 64 << 10

// Outcome classifies an attempt for the worker.
type Outcome string

// Outcomes of an attempt.
const (
	// OutcomeSuccess: the receiver answered 2xx. Only 2xx counts.
	OutcomeSuccess Outcome = "success"
	// OutcomeRetry: any other failure (no answer, timeout, redirect,
	// other status); retry on the schedule.
	OutcomeRetry Outcome = "retry"
	// OutcomeRefused: the receiver's address is one deliveries may not
	// connect to (see [NewClient]). Nothing was sent, and trying again
	// would only knock on the same door, so the message fails at once.
	OutcomeRefused Outcome = "refused"
	// OutcomeRetryAfter: 429 or 503 with a valid Retry-After; retry no
	// sooner than Attempt.RetryAfter (see [NextAttempt]).
	OutcomeRetryAfter Outcome = "retry_after"
	// OutcomeGone: 410 Gone; the receiver asks to stop, so the endpoint is
	// disabled and the message not retried.
	OutcomeGone Outcome = "gone"
)

// Delivery is what one attempt sends and where.
type Delivery struct {
	// URL is the endpoint's URL.
	URL string
	// MsgID is the message id ("msg_..."), sent as webhook-id and the same
	// on every attempt so receivers can drop duplicates.
	MsgID string
	// Body is the exact body from [store.NewWebhookBody], stored once and sent as is.
	Body []byte
	// Secrets are the endpoint's live signing secrets: one, or two during
	// a rotation.
	Secrets []string
}

// Attempt records one delivery attempt, as the attempts log keeps it.
type Attempt struct {
	// At is the attempt's time as given to [Deliver]; its unix seconds were
	// sent as webhook-timestamp.
	At time.Time
	// StatusCode is the receiver's HTTP status, 0 when there was no answer.
	StatusCode int
	// Duration is the wall time from sending to the end of reading the
	// answer (measured on the monotonic clock, independent of At).
	Duration time.Duration
	// Response is the first [ResponseLimit] bytes of the answer's body, as
	// received (it may be cut inside a UTF-8 sequence).
	Response string
	// Error says what went wrong, empty on success, in words meant for the
	// endpoint's owner: it never contains a secret, nor the URL (which may
	// carry the receiver's own token), nor an address, port or resolver of
	// the network keyd runs in.
	Error string
	// Detail is the underlying error in full when there was no whole
	// answer, for the operator's log only: it may name the address dialled
	// and the resolver asked, so it is never stored or shown to the owner.
	// It never contains a secret or the URL.
	Detail string
	// Outcome is what the worker should do next.
	Outcome Outcome
	// RetryAfter is the receiver's requested delay when Outcome is
	// [OutcomeRetryAfter], capped at [MaxRetryAfter].
	RetryAfter time.Duration
}

// Deliver makes one attempt to deliver d with client (from [NewClient]):
// it signs d.Body for this attempt's timestamp now and POSTs it with the
// webhook-id, webhook-timestamp, webhook-signature, content-type and
// user-agent headers, then classifies the answer. It never returns an error:
// every failure is recorded in the Attempt, to be logged and retried.
func Deliver(ctx context.Context, client *http.Client, d Delivery, now time.Time) Attempt {
	a := Attempt{At: now, Outcome: OutcomeRetry}
	sig, err := SignatureHeader(d.Secrets, d.MsgID, now, d.Body)
	if err != nil {
		a.Error = "cannot sign message: " + err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		a.Error = "cannot build request: " + stripURL(err).Error()
		return a
	}
	req.Header.Set(HeaderID, d.MsgID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)

	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		a.Duration = time.Since(start)
		a.Error, a.Detail = failureReason(err), stripURL(err).Error()
		if errors.Is(err, ErrBlockedAddress) {
			a.Outcome = OutcomeRefused
		}
		return a
	}
	a.StatusCode = resp.StatusCode
	buf := make([]byte, ResponseLimit)
	n, rerr := io.ReadFull(resp.Body, buf)
	a.Response = string(buf[:n])
	if rerr == nil {
		_, rerr = io.CopyN(io.Discard, resp.Body, drainLimit)
	}
	resp.Body.Close()
	a.Duration = time.Since(start)

	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		a.Outcome = OutcomeSuccess
	case code == http.StatusGone:
		a.Outcome = OutcomeGone
		a.Error = "receiver answered 410 Gone: endpoint to be disabled"
	case code >= 300 && code <= 399:
		a.Error = "receiver answered " + status(code) + "; redirects are not followed"
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		a.Error = "receiver answered " + status(code)
		if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			a.Outcome, a.RetryAfter = OutcomeRetryAfter, ra
		}
	default:
		a.Error = "receiver answered " + status(code)
	}
	// A body cut short by a timeout or reset does not undo a 2xx: the
	// receiver has already accepted the message.
	if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) && a.Outcome != OutcomeSuccess {
		a.Error += " (reading answer: " + failureReason(rerr) + ")"
		a.Detail = "reading answer: " + stripURL(rerr).Error()
	}
	return a
}

// status names a status code by its standard text, not the receiver's.
func status(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// stripURL removes the method and URL that net/http puts in front of its
// errors.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
