//go:build !race

package aisim

const raceEnabled = false
