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

// fetchImage reads and decodes the image behind a presigned GET URL. An
// image that is missing, expired or unusable is an EUNPROCESSABLE error whose
// message is the reason for the user; a failed fetch is EUNAVAILABLE.
func (s *Service) fetchImage(ctx context.Context, imageURL string) (image.Image, string, error) {
	body, err := s.open(ctx, imageURL)
	if err != nil {
		return nil, "", err
	}
	defer body.Close()
	return decodeImage(&limitedReader{r: body, n: MaxImageBytes})
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

// decodeImage checks the image's header before decoding it, so an image too
// large to decode is refused for the price of a few bytes. It accepts PNG
// and JPEG only, whatever other formats the program has registered.
func decodeImage(r *limitedReader) (image.Image, string, error) {
	var head bytes.Buffer
	cfg, format, err := image.DecodeConfig(io.TeeReader(r, &head))
	if rerr := r.failure(); rerr != nil {
		return nil, "", rerr
	}
	if err != nil || (format != "png" && format != "jpeg") {
		return nil, "", reject("not a PNG or JPEG image")
	}
	if err := checkSize(cfg.Width, cfg.Height); err != nil {
		return nil, "", err
	}
	rest := io.MultiReader(&head, r)
	var img image.Image
	if format == "png" {
		img, err = png.Decode(rest)
	} else {
		img, err = jpeg.Decode(rest)
	}
	if rerr := r.failure(); rerr != nil {
		return nil, "", rerr
	}
	if err != nil {
		return nil, "", reject("the %s image is corrupt or truncated (%v)", formatName(format), err)
	}
	return img, format, nil
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
