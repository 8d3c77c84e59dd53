package store

import "time"

// EventTimeFormat is how an event's time is written for receivers and in
// the audit log: RFC 3339 in UTC with exactly three fractional digits, so
// that events of the same second still differ and the text has one length.
const EventTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// EventTime is an event's time, kept to the millisecond, that marshals to
// JSON in EventTimeFormat.
type EventTime time.Time

// MarshalJSON writes t in EventTimeFormat, in UTC.
func (t EventTime) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(EventTimeFormat)+2)
	b = append(b, '"')
	b = time.Time(t).UTC().AppendFormat(b, EventTimeFormat)
	return append(b, '"'), nil
}

// eventTimeFromMillis reads an event time as stored (unix milliseconds).
func eventTimeFromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
