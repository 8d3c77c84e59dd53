//go:build race

package pluginapi

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts vary by one or so between runs.
const raceEnabled = true
