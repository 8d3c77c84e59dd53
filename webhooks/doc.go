// Package webhooks delivers keyd's events to receivers as Standard Webhooks
// (standardwebhooks.com, spec v1).
//
// It holds the parts of delivery that need no database: secrets and
// signatures ([NewSecret], [Sign], [SignatureHeader], [Verify]), the message
// body ([NewBody]), endpoint event filters ([ValidatePatterns], [MatchAny]),
// endpoint URL checks ([ValidateURL]), an HTTP client that refuses private
// destinations at connect time ([NewClient]), the retry schedule
// ([NextAttempt], [ParseRetryAfter], [ShouldDisable]) and a single delivery
// attempt ([Deliver]). The worker that drains the outbox builds on these.
//
// Secrets are handled as strings of the form "whsec_<base64>". They are
// never logged and never appear in an error message of this package.
package webhooks
