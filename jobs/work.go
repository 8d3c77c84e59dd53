package jobs

import "context"

// ActivityFlusher writes what validations recorded in memory.
type ActivityFlusher interface {
	FlushActivity(ctx context.Context) error
}

// FlushActivity writes last-used times, daily counters and sites seen.
func FlushActivity(st ActivityFlusher) func(context.Context) error {
	return st.FlushActivity
}
