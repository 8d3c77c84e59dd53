package keyindex

import "time"

// Key statuses, as the HTTP contract names them.
const (
	Active   = "active"
	Inactive = "inactive"
	Expired  = "expired"
	Revoked  = "revoked"
)

// Status is the one rule for a key's status at now, used by validation, the
// key lists, the command line and webhook payloads alike. stored is the
// status in the database; expiresAt and validUntil are unix seconds (0 =
// none). Deadlines apply to the second, whether or not a job has marked the
// key yet, and the first that holds wins: revoked (stored, or past a reset
// key's grace), expired (stored, or past expires_at, even when deactivated),
// inactive.
func Status(stored string, expiresAt, validUntil int64, now time.Time) string {
	t := now.Unix()
	switch {
	case stored == Revoked, validUntil != 0 && t >= validUntil:
		return Revoked
	case stored == Expired, expiresAt != 0 && t >= expiresAt:
		return Expired
	case stored == Inactive:
		return Inactive
	}
	return Active
}
