package objectstore

// WithSidecarForTest makes Start keep metadata in the sidecar tree even
// where the filesystem has user xattrs, to test the fallback.
func WithSidecarForTest() Option {
	return func(c *config) { c.forceSidecar = true }
}

// MetadataStore reports where the server keeps metadata: "xattr" or
// "sidecar".
func (s *Server) MetadataStore() string { return s.metadataStore }
