package api

import "sync"

// maxKnownUploads is how many uploads a Server remembers (see
// knownUploads): about 150 bytes each, so at most a few MiB. An upload is
// normally submitted within seconds of its URL; one submitted after it was
// forgotten, or to another API process, costs one read of its size from
// the store.
const maxKnownUploads = 50_000

// knownUploads remembers the uploads a Server saw in the object store and
// their sizes, by upload key. Upload URLs are write-once, so an upload seen
// once stays as it was: a submission naming it again costs no call to the
// object store (see pinInput). The oldest is forgotten first.
type knownUploads struct {
	mu    sync.Mutex
	size  map[string]int64
	order []string // keys, oldest first, as a ring of maxKnownUploads
	next  int      // where the next key goes in order
}

func newKnownUploads() *knownUploads {
	return &knownUploads{size: map[string]int64{}}
}

// present remembers that the object store holds key's upload, of size
// bytes.
func (u *knownUploads) present(key string, size int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.size[key]; !ok {
		if len(u.order) < maxKnownUploads {
			u.order = append(u.order, key)
		} else {
			delete(u.size, u.order[u.next])
			u.order[u.next] = key
			u.next = (u.next + 1) % maxKnownUploads
		}
	}
	u.size[key] = size
}

// lookup returns the size of key's upload, if it was seen stored.
func (u *knownUploads) lookup(key string) (size int64, seen bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	size, seen = u.size[key]
	return size, seen
}
