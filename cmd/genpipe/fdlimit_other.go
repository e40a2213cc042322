//go:build !unix

package main

// fileLimit returns defaultFileLimit where the process's descriptor limit
// cannot be read.
func fileLimit() int { return defaultFileLimit }
