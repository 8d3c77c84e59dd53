package pluginapi

import "keyd/plugin-api/console"

// consoleConfig builds the owner console on the same store and clock, with
// the API's own wording of errors: the console implements no rule twice.
func (s *server) consoleConfig() console.Config {
	return console.Config{
		Store:          s.store,
		Scopes:         s.scopes,
		Now:            s.now,
		Logger:         s.log,
		TrustedProxies: s.trustedProxies,

		AllowPrivateWebhooks: s.allowPrivateWebhooks,
		Explain: func(err error) console.Problem {
			e := toAPIError(err)
			return console.Problem{Status: e.Status, Message: e.Message, Fields: e.Fields}
		},
	}
}
