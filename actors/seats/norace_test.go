//go:build !race

package seats

const raceEnabled = false
