package api

import "sync"

// maxSignedUploads is how many uploads' signed sizes a Server remembers
// (see signedUploads): about 150 bytes each, so at most a few MiB. An
// upload is normally used within seconds of its URL; one used later, or
// issued by another API process, costs a read of its copy's size instead.
const maxSignedUploads = 50_000

// signedUploads remembers the size each upload URL this server issued was
// signed for, by upload key: the object store refuses a PUT of any other
// size to that URL, and each key has one URL (its objectId is new), so
// whatever is stored at the key has that size. A submission naming a
// remembered upload checks the size limit without asking the object store
// (see pinInput). The oldest is forgotten first.
type signedUploads struct {
	mu    sync.Mutex
	size  map[string]int64
	order []string // keys, oldest first, as a ring of maxSignedUploads
	next  int      // where the next key goes in order
}

func newSignedUploads() *signedUploads {
	return &signedUploads{size: map[string]int64{}}
}

// add remembers that key's upload URL was signed for size bytes.
func (u *signedUploads) add(key string, size int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.order) < maxSignedUploads {
		u.order = append(u.order, key)
	} else {
		delete(u.size, u.order[u.next])
		u.order[u.next] = key
		u.next = (u.next + 1) % maxSignedUploads
	}
	u.size[key] = size
}

// signed returns the size key's upload URL was signed for, if remembered.
func (u *signedUploads) signed(key string) (int64, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	n, ok := u.size[key]
	return n, ok
}
