package aisim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"

	"github.com/genpipe/genpipe"
)

// errTooLarge ends the read of an image over MaxImageBytes.
var errTooLarge = errors.New("image over the size limit")

// loadImage fetches and decodes the image behind a presigned GET URL,
// holding memory of the service's budget for it from before the decode:
// what decoding takes, worked out from the header, plus what extra says
// the call needs besides for an image of that size (nil for nothing). It
// waits for that memory if need be, still holding the call's slot. The
// caller releases the claim as it is done with the image.
//
// An image that is missing, expired, unusable or too costly to decode is an
// EUNPROCESSABLE error whose message is the reason for the user; a failed
// fetch is EUNAVAILABLE.
func (s *Service) loadImage(ctx context.Context, imageURL string, extra func(image.Point) int64) (image.Image, string, *claim, error) {
	f, err := s.fetchHeader(ctx, imageURL)
	if err != nil {
		return nil, "", nil, err
	}
	need := f.need(extra)
	if err := s.affordable(f.header, need); err != nil {
		f.close()
		return nil, "", nil, err
	}
	c, ok := s.budget.tryAcquire(need)
	if !ok {
		// Waiting with the download open would hold the connection and
		// run down the fetch's timeout: fetch again once the memory is
		// free. The object may have changed meanwhile, so its header is
		// read again and must be the same.
		f.close()
		if c, err = s.budget.acquire(ctx, need); err != nil {
			return nil, "", nil, err
		}
		first := f.header
		if f, err = s.fetchHeader(ctx, imageURL); err == nil && f.header != first {
			f.close()
			err = reject("the image changed while it waited to be decoded")
		}
		if err != nil {
			c.release()
			return nil, "", nil, err
		}
	}
	defer f.close()
	img, err := f.decode()
	if err != nil {
		c.release()
		return nil, "", nil, err
	}
	return img, f.header.format, c, nil
}

// fetched is an image whose header has been read, and its pixels not yet.
type fetched struct {
	header imageHeader
	head   []byte // the bytes read so far, which the decoder reads again
	r      *limitedReader
	body   io.Closer
}

// fetchHeader starts fetching the image and reads its header: see
// readImageHeader.
func (s *Service) fetchHeader(ctx context.Context, imageURL string) (*fetched, error) {
	body, err := s.open(ctx, imageURL)
	if err != nil {
		return nil, err
	}
	f := &fetched{r: &limitedReader{r: body, n: MaxImageBytes}, body: body}
	if f.header, f.head, err = s.readImageHeader(f.r); err != nil {
		body.Close()
		return nil, err
	}
	return f, nil
}

// need is the memory a call needs for the image: decoding it, keeping its
// header meanwhile, and extra. The header is read in the 4 KiB reads of
// image.DecodeConfig's buffer, which may come out a read longer when the
// image is fetched again, so one is counted besides.
func (f *fetched) need(extra func(image.Point) int64) int64 {
	n := f.header.decodedBytes + int64(len(f.head)) + 4<<10
	if extra != nil {
		n += extra(image.Pt(f.header.width, f.header.height))
	}
	return n
}

func (f *fetched) close() { _ = f.body.Close() }

// decode decodes the image, header included.
func (f *fetched) decode() (image.Image, error) {
	rest := io.MultiReader(bytes.NewReader(f.head), f.r)
	var img image.Image
	var err error
	if f.header.format == "png" {
		img, err = png.Decode(rest)
	} else {
		img, err = jpeg.Decode(rest)
	}
	if rerr := f.r.failure(); rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return nil, reject("the %s image is corrupt or truncated (%v)", formatName(f.header.format), err)
	}
	return img, nil
}

// open starts a GET of a presigned URL. 403 and 404 mean the link expired or
// the object is gone, which retrying the same URL does not mend.
func (s *Service) open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, genpipe.Errorf(genpipe.EINVALID, "imageUrl is not a valid URL")
	}
	resp, err := s.cfg.client.Do(req)
	if err != nil {
		return nil, unavailable("fetching the image", err)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusForbidden || code == http.StatusNotFound:
		drain(resp.Body)
		return nil, genpipe.Errorf(genpipe.EUNPROCESSABLE, "image not found or link expired (HTTP %d)", code)
	case code < 200 || code > 299:
		drain(resp.Body)
		return nil, unavailable("fetching the image", fmt.Errorf("the object store answered HTTP %d", code))
	}
	return resp.Body, nil
}

// readImageHeader reads the image's header and decides from it alone
// whether the image may be decoded, so an image too large or too costly to
// decode is refused for the price of a few bytes. It accepts PNG and JPEG
// only, whatever other formats the program has registered. It returns the
// bytes it read, at most MaxHeaderBytes.
func (s *Service) readImageHeader(r *limitedReader) (imageHeader, []byte, error) {
	head := &headBuffer{}
	cfg, format, err := image.DecodeConfig(io.TeeReader(r, head))
	switch rerr := r.failure(); {
	case rerr != nil:
		return imageHeader{}, nil, rerr
	case head.over:
		return imageHeader{}, nil, reject("the image's header (what comes before its pixels) is over %d KiB", MaxHeaderBytes>>10)
	case err != nil || (format != "png" && format != "jpeg"):
		return imageHeader{}, nil, reject("not a PNG or JPEG image")
	}
	if err := checkSize(cfg.Width, cfg.Height); err != nil {
		return imageHeader{}, nil, err
	}
	h := readHeader(format, cfg, head.Bytes())
	if h.decodedBytes > s.cfg.maxDecodedBytes {
		s.budget.refused()
		return imageHeader{}, nil, reject("image is %d×%d (%s) and would take %s to decode; the maximum is %s",
			h.width, h.height, h.kind, mib(h.decodedBytes), mib(s.cfg.maxDecodedBytes))
	}
	return h, head.Bytes(), nil
}

// affordable refuses an image whose call would need more than the whole
// memory budget: waiting would not help. With budgets of at least the
// default this cannot happen: the option's checks leave room for the
// largest image WithMaxDecodedBytes lets through.
func (s *Service) affordable(h imageHeader, need int64) error {
	if need <= s.cfg.memoryBudget {
		return nil
	}
	s.budget.refused()
	return reject("image is %d×%d (%s) and would take %s to process; the service has %s for all its calls",
		h.width, h.height, h.kind, mib(need), mib(s.cfg.memoryBudget))
}

// mib formats a number of bytes in whole MiB, rounded up.
func mib(n int64) string { return fmt.Sprintf("%d MiB", (n+1<<20-1)>>20) }

// headBuffer keeps what image.DecodeConfig reads, up to MaxHeaderBytes,
// so the decoder can read it again.
type headBuffer struct {
	bytes.Buffer
	over bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if h.Len()+len(p) > MaxHeaderBytes {
		h.over = true
		return 0, errTooLarge
	}
	return h.Buffer.Write(p)
}

func checkSize(w, h int) error {
	switch {
	case w > MaxImageSide || h > MaxImageSide:
		return reject("image is %d×%d; the maximum is %d×%d", w, h, MaxImageSide, MaxImageSide)
	case w < MinImageSide || h < MinImageSide:
		return reject("image is %d×%d; the minimum is %d×%d", w, h, MinImageSide, MinImageSide)
	}
	return nil
}

func formatName(format string) string {
	if format == "png" {
		return "PNG"
	}
	return "JPEG"
}

// reject is an image the model refuses; its message is shown to the user.
func reject(format string, args ...any) error {
	return genpipe.Errorf(genpipe.EUNPROCESSABLE, format, args...)
}

// limitedReader reads at most n bytes and remembers why reading stopped, so
// a decoder's error can be told apart from the network's or the limit's.
type limitedReader struct {
	r    io.Reader
	n    int64
	over bool  // more than n bytes were offered
	err  error // the first read error other than io.EOF
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.over {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	switch {
	case l.n < 0:
		l.over = true
		return n, errTooLarge
	case err != nil && err != io.EOF && l.err == nil:
		l.err = err
	}
	return n, err
}

// failure is the error that ended the read, if it was not the image's fault
// alone: too large (a reject) or the network (unavailable).
func (l *limitedReader) failure() error {
	switch {
	case l.over:
		return reject("the image is larger than %d MiB", MaxImageBytes>>20)
	case l.err != nil:
		return unavailable("fetching the image", l.err)
	}
	return nil
}

// put uploads data to a presigned PUT URL with the content type it was
// signed for.
func (s *Service) put(ctx context.Context, what, rawURL, contentType string, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, rawURL, bytes.NewReader(data))
	if err != nil {
		return genpipe.Errorf(genpipe.EINVALID, "the %s output URL is not valid", what)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := s.cfg.client.Do(req)
	if err != nil {
		return unavailable("uploading the "+what, err)
	}
	drain(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return unavailable("uploading the "+what, fmt.Errorf("the object store answered HTTP %d", resp.StatusCode))
	}
	return nil
}

// drain reads a little of body and closes it, so the connection can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}
