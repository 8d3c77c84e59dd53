// Package webhooks delivers keyd's events to receivers as Standard Webhooks
// (standardwebhooks.com, spec v1).
//
// It holds the parts of delivery that need no database: secrets and
// signatures ([NewSecret], [Sign], [SignatureHeader], [Verify]), checks of
// an endpoint's event patterns ([ValidatePatterns]) and URL
// ([ValidateURL]), an HTTP client that refuses private destinations at
// connect time ([NewClient]), the retry schedule ([NextAttempt],
// [ParseRetryAfter]) and a single delivery attempt ([Deliver]). The worker
// that drains the outbox builds on these.
//
// What is sent is the store's: the event types, the data of each event,
// which endpoint's patterns select which event, the message body and when a
// failing endpoint is disabled are rules the store applies in the
// transactions that write the outbox (see [store.WebhookEventTypes],
// [store.MatchEventPatterns], [store.NewWebhookBody] and
// [store.WebhookDisableAfter]). This package imports the store; the store
// knows nothing of it.
//
// Secrets are handled as strings of the form "whsec_<base64>". They are
// never logged and never appear in an error message of this package.
package webhooks
