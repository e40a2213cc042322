// Package invalid gathers what is wrong with a part's options, so that
// every constructor (api, aisim, notifier, worker) reports options out of
// range the same way: all of them at once, each naming the option and what
// is wanted.
package invalid

import (
	"errors"
	"fmt"
)

// List gathers the problems of one part's options.
type List struct {
	part string
	errs []error
}

// New returns an empty list for part, the prefix of its errors.
func New(part string) *List { return &List{part: part} }

// If adds a problem when bad: format and args say which option and what is
// wanted ("capacity %d: want at least 1").
func (l *List) If(bad bool, format string, args ...any) {
	if bad {
		l.errs = append(l.errs, fmt.Errorf(l.part+": "+format, args...))
	}
}

// Err returns the problems joined, or nil when there are none.
func (l *List) Err() error { return errors.Join(l.errs...) }
