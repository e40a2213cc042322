package api

import "sync"

// maxKnownUploads is how many uploads a Server remembers (see
// knownUploads): about 150 bytes each, so at most a few MiB. An upload is
// normally submitted within seconds of its URL; one submitted later, or
// to another API process, costs one read of its size from the store.
const maxKnownUploads = 50_000

// knownUploads remembers what a Server knows of uploads, by upload key:
// the size an upload URL it issued was signed for (the object store
// refuses a PUT of any other size to that URL, and each key has one URL,
// its objectId being new), and whether the object is there. Upload URLs
// are write-once, so an upload seen once stays as it was: a submission
// naming it again costs no call to the object store (see pinInput). The
// oldest is forgotten first.
type knownUploads struct {
	mu     sync.Mutex
	upload map[string]knownUpload
	order  []string // keys, oldest first, as a ring of maxKnownUploads
	next   int      // where the next key goes in order
}

// knownUpload is what a Server knows of one upload.
type knownUpload struct {
	size    int64 // bytes: signed for, or read from the store
	present bool  // seen in the store
}

func newKnownUploads() *knownUploads {
	return &knownUploads{upload: map[string]knownUpload{}}
}

// signed remembers that key's upload URL was signed for size bytes.
func (u *knownUploads) signed(key string, size int64) {
	u.keep(key, knownUpload{size: size})
}

// present remembers that the object store holds key's upload, of size
// bytes.
func (u *knownUploads) present(key string, size int64) {
	u.keep(key, knownUpload{size: size, present: true})
}

func (u *knownUploads) keep(key string, k knownUpload) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.upload[key]; !ok {
		if len(u.order) < maxKnownUploads {
			u.order = append(u.order, key)
		} else {
			delete(u.upload, u.order[u.next])
			u.order[u.next] = key
			u.next = (u.next + 1) % maxKnownUploads
		}
	}
	u.upload[key] = k
}

// lookup returns what is known of key's upload.
func (u *knownUploads) lookup(key string) (knownUpload, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	k, ok := u.upload[key]
	return k, ok
}
