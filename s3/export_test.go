package s3

// WithSidecarForTest makes StartServer keep metadata in the sidecar tree
// even where the filesystem has user xattrs, to test the fallback.
func WithSidecarForTest() ServerOption {
	return func(o *serverOptions) { o.forceSidecar = true }
}

// MetadataStore reports where the server keeps metadata: "xattr" or
// "sidecar".
func (s *Server) MetadataStore() string { return s.metadataStore }
