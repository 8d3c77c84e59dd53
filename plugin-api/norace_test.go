//go:build !race

package pluginapi

const raceEnabled = false
