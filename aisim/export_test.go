package aisim

// Test helpers of this package's internal tests, for its external ones.
var (
	PNGFile  = pngFile
	PNGHead  = pngHead
	JPEGHead = jpegHead
	Gradient = gradient
)

type PNGChunk = pngChunk
