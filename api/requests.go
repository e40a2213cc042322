package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// maxIdempotencyKey bounds the Idempotency-Key header, in bytes.
const maxIdempotencyKey = 200

// uploadContentTypes are the image types the Checking AI accepts.
var uploadContentTypes = map[string]bool{genpipe.ContentTypePNG: true, genpipe.ContentTypeJPEG: true}

type uploadRequest struct {
	ContentType string `json:"contentType"`
	// ContentLength is the image's size in bytes, required: the upload URL
	// is signed for it, so the object store refuses any other size.
	ContentLength int64 `json:"contentLength"`
}

type uploadResponse struct {
	ObjectID  string            `json:"objectId"`
	UploadURL string            `json:"uploadUrl"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"` // to send with the PUT, exactly
	ExpiresAt time.Time         `json:"expiresAt"`
}

// createUpload hands out a presigned PUT URL: the image goes straight to
// the object store, never through the API. The URL is signed for the
// declared type and size, for a key in the caller's own space
// (genpipe.UploadKey), and to write once, so it stores nothing else, its
// objectId means nothing to another API key, and what it stored stays.
func (s *Server) createUpload(w http.ResponseWriter, r *http.Request) {
	var in uploadRequest
	if err := httpjson.Decode(w, r, s.cfg.maxBody, &in); err != nil {
		s.problem(w, r, err)
		return
	}
	if err := s.validateUpload(in); err != nil {
		s.problem(w, r, err)
		return
	}
	objectID := uuid.NewString()
	put := genpipe.PutHeaders{ContentType: in.ContentType, ContentLength: in.ContentLength, WriteOnce: true}
	key := genpipe.UploadKey(ownerOf(r), objectID)
	uploadURL, err := s.objects.PresignPut(r.Context(), key, put, s.cfg.uploadTTL)
	if err != nil {
		s.problem(w, r, fmt.Errorf("presign upload: %w", err))
		return
	}
	httpjson.Write(w, http.StatusCreated, uploadResponse{
		ObjectID: objectID, UploadURL: uploadURL, Method: http.MethodPut,
		Headers:   put.Header(),
		ExpiresAt: s.cfg.now().Add(s.cfg.uploadTTL).UTC(),
	})
}

func (s *Server) validateUpload(in uploadRequest) error {
	switch {
	case !uploadContentTypes[in.ContentType]:
		return genpipe.Errorf(genpipe.EINVALID, "contentType must be %q or %q, not %q",
			genpipe.ContentTypePNG, genpipe.ContentTypeJPEG, in.ContentType)
	case in.ContentLength == 0:
		return genpipe.Errorf(genpipe.EINVALID, "contentLength is required: the image's size in bytes (at most %d), which the upload URL is signed for",
			s.cfg.maxUpload)
	case in.ContentLength < 0:
		return genpipe.Errorf(genpipe.EINVALID, "contentLength must be the image's size in bytes, not %d", in.ContentLength)
	case in.ContentLength > s.cfg.maxUpload:
		return genpipe.Errorf(genpipe.ETOOLARGE, "the image is %d bytes; the most is %d", in.ContentLength, s.cfg.maxUpload)
	}
	return nil
}

// createRequest admits and validates a request, pins its image (see
// pinInput), hands it to the Submitter (stored as received, queued in
// Kafka), and only then answers 202. With an Idempotency-Key a retry gets
// the same id and queues nothing new.
//
// Admission comes first, before the body is read: over the backlog bound
// even a retry of an accepted request gets 429 (and its id when it retries
// later), so that a full queue costs the API nothing.
func (s *Server) createRequest(w http.ResponseWriter, r *http.Request) {
	if err := s.admit(r.Context()); err != nil {
		s.problem(w, r, err)
		return
	}
	req, explicit, err := s.readRequest(w, r)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if err := s.checkBudgets(r.Context(), callerOf(r).tenant); err != nil {
		s.problem(w, r, err)
		return
	}
	admission := s.startAdmission(r.Context(), req)
	if s.admitsOnEstimate(req) {
		if _, _, err := admission(); err != nil {
			s.problem(w, r, err)
			return
		}
	}
	if err := s.pinInput(r.Context(), req); err != nil {
		s.problem(w, r, err)
		return
	}
	stored, queued, err := s.submitter.Submit(r.Context(), req)
	if (err == nil && stored.ID != req.ID) || genpipe.ErrorCode(err) == genpipe.ECONFLICT {
		// A retry of an earlier request, which has its own input: a copy
		// made for this one is no request's.
		s.discardInput(r.Context(), req)
	}
	if err == nil && stored.ID != req.ID && !sameDeadline(stored.StartBy, req.StartBy, explicit) {
		err = genpipe.Errorf(genpipe.ECONFLICT, "Idempotency-Key %q was used for a request with another startBy", req.IdempotencyKey)
	}
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if queued {
		s.backlog.added()
	}
	est, estimated, _ := admission() // no deadline to refuse on, or refused above
	share := stored.Share.Normalized()
	accepted := genpipe.Accepted{ID: stored.ID, Status: genpipe.StatusReceived,
		Tenant: share.Tenant, Priority: share.Priority, StartBy: stored.StartBy, Message: "request received, please wait"}
	if estimated && queued {
		accepted.EstimatedStartAt, accepted.EstimatedDoneAt = est.StartAt.UTC(), est.DoneAt.UTC()
		if s.cfg.observeEstimate != nil {
			s.predicted.keep(stored.ID, est)
		}
	}
	httpjson.Write(w, http.StatusAccepted, accepted)
}

// readRequest reads and checks a new request: everything but whether its
// image was uploaded. Every error is a genpipe error for the client. The
// request is the caller's tenant's, with the tenant's weight now.
func (s *Server) readRequest(w http.ResponseWriter, r *http.Request) (req *genpipe.Request, explicitStartBy bool, err error) {
	var in genpipe.SubmitBody
	if err := httpjson.Decode(w, r, s.cfg.maxBody, &in); err != nil {
		return nil, false, err
	}
	req, err = s.validate(in, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return nil, false, err
	}
	if req.StartBy, explicitStartBy, err = s.deadline(in); err != nil {
		return nil, false, err
	}
	if err := s.checkWebhookHost(r.Context(), req.WebhookURL); err != nil {
		return nil, false, err
	}
	c := callerOf(r)
	if !c.tenant.Allows(req.Priority) {
		return nil, false, genpipe.Errorf(genpipe.EFORBIDDEN, "priority %q is above what tenant %s may ask for: its maxPriority is %q",
			req.Priority, c.tenant.Name, c.tenant.MaxPriority)
	}
	req.Owner = c.owner
	req.Tenant, req.Weight = c.tenant.Name, c.tenant.Weight
	return req, explicitStartBy, nil
}

// validate checks a request's fields; every complaint names the field.
func (s *Server) validate(in genpipe.SubmitBody, idempotencyKey string) (*genpipe.Request, error) {
	in.Description = strings.TrimSpace(in.Description)
	in.Title = strings.TrimSpace(in.Title)
	switch {
	case in.ObjectID == "":
		return nil, genpipe.Errorf(genpipe.EINVALID, "objectId is required: get one from POST /v1/uploads")
	case !canonicalUUID(in.ObjectID):
		return nil, genpipe.Errorf(genpipe.EINVALID, "objectId %q is not an id from POST /v1/uploads", in.ObjectID)
	case in.Style == "":
		return nil, genpipe.Errorf(genpipe.EINVALID, "style is required: one of %s", styleIDs())
	case !hasVisible(in.Description):
		return nil, genpipe.Errorf(genpipe.EINVALID, "description is required")
	case utf8.RuneCountInString(in.Description) > s.cfg.maxDescLen:
		return nil, genpipe.Errorf(genpipe.EINVALID, "description is %d characters; the maximum is %d",
			utf8.RuneCountInString(in.Description), s.cfg.maxDescLen)
	case utf8.RuneCountInString(in.Title) > s.cfg.maxTitleLen:
		return nil, genpipe.Errorf(genpipe.EINVALID, "title is over %d characters", s.cfg.maxTitleLen)
	case hasControl(in.Description):
		return nil, genpipe.Errorf(genpipe.EINVALID, "description contains a control character")
	case hasControl(in.Title):
		return nil, genpipe.Errorf(genpipe.EINVALID, "title contains a control character")
	case formatChar(in.Description) >= 0:
		return nil, genpipe.Errorf(genpipe.EINVALID, "description contains the invisible format character %U; remove it", formatChar(in.Description))
	case formatChar(in.Title) >= 0:
		return nil, genpipe.Errorf(genpipe.EINVALID, "title contains the invisible format character %U; remove it", formatChar(in.Title))
	case in.Title != "" && !hasVisible(in.Title):
		return nil, genpipe.Errorf(genpipe.EINVALID, "title has no visible character; leave title out to use the description's first line")
	case len(idempotencyKey) > maxIdempotencyKey:
		return nil, genpipe.Errorf(genpipe.EINVALID, "Idempotency-Key is over %d characters", maxIdempotencyKey)
	case strings.ContainsFunc(idempotencyKey, func(r rune) bool { return r < ' ' || r > '~' }):
		return nil, genpipe.Errorf(genpipe.EINVALID, "Idempotency-Key must be printable ASCII")
	}
	if _, ok := genpipe.StyleByID(in.Style); !ok {
		return nil, genpipe.Errorf(genpipe.EINVALID, "unknown style %q: choose one of %s", in.Style, styleIDs())
	}
	if in.WebhookURL != "" {
		if _, err := parseWebhookURL(in.WebhookURL); err != nil {
			return nil, err
		}
	}
	priority, err := genpipe.ParsePriority(in.Priority)
	if err != nil {
		return nil, err
	}
	if in.Title == "" {
		in.Title = defaultTitle(in.Description)
	}
	return &genpipe.Request{
		ID:             newRequestID(),
		Job:            genpipe.Job{ObjectID: in.ObjectID, Style: in.Style, Title: in.Title, Description: in.Description},
		WebhookURL:     in.WebhookURL,
		IdempotencyKey: idempotencyKey,
		Share:          genpipe.Share{Priority: priority},
		Status:         genpipe.StatusReceived,
	}, nil
}

// newRequestID returns a new request's id: a UUIDv7, the time in
// milliseconds, then a sequence and 62 random bits. Ids made one after the
// other sort one after the other, so a new request's rows go to the right
// edge of every index on the id (the primary key, the backlog, the status
// history) instead of a random page of each: a SQLite commit of a few
// requests wrote about 13 pages with random (v4) ids, and the store took
// 4,570 requests/s of `genpipe bench intake` against 6,250/s with these.
// An id is no secret: a request is found only by its owner's key, and its
// creation time is in the request anyway.
func newRequestID() string { return uuid.Must(uuid.NewV7()).String() }

// canonicalUUID reports whether id is a UUID as uuid.NewString writes it
// (lowercase, hyphenated): the one spelling of each id, so that one object
// has one key. uuid.Validate also takes braces, urn:uuid: and no hyphens.
func canonicalUUID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// hasControl reports whether s holds a control character other than tab
// and line breaks. NUL in particular: PostgreSQL's text cannot store it.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r'
	})
}

// formatChar returns the first Unicode format character (category Cf) in s,
// or -1 for none. Format characters are invisible and change how the text
// around them shows: U+202E RIGHT-TO-LEFT OVERRIDE makes "invoice‮gpj.exe"
// read "invoiceexe.jpg", U+200B ZERO WIDTH SPACE makes two equal-looking
// titles differ. Two are part of ordinary writing and pass: U+200C ZERO
// WIDTH NON-JOINER (Persian, Indic scripts) and U+200D ZERO WIDTH JOINER
// (those scripts, and emoji sequences such as a family).
func formatChar(s string) rune {
	for _, r := range s {
		if unicode.Is(unicode.Cf, r) && r != '\u200C' && r != '\u200D' {
			return r
		}
	}
	return -1
}

// hasVisible reports whether s has a character that shows by itself: one
// that is not white space, a format character or another default-ignorable
// code point (Hangul fillers, variation selectors, ...), nor the blank
// Braille pattern that stands in for a space. A text of invisible
// characters only is as empty as an empty one.
func hasVisible(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return !unicode.IsSpace(r) && r != '\u2800' &&
			!unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
	})
}

// defaultTitle is the description's first line with a visible character,
// trimmed, and cut at a word near 60 characters.
func defaultTitle(description string) string {
	var title string
	for line := range strings.Lines(description) {
		if title = strings.TrimSpace(line); hasVisible(title) {
			break
		}
	}
	if utf8.RuneCountInString(title) <= 60 {
		return title
	}
	runes := []rune(title)[:60]
	if i := strings.LastIndex(string(runes), " "); i > 20 {
		return string(runes)[:i] + "…"
	}
	return string(runes) + "…"
}

func styleIDs() string {
	ids := make([]string, len(genpipe.Styles))
	for i, st := range genpipe.Styles {
		ids[i] = st.ID
	}
	return strings.Join(ids, ", ")
}

// pinInput finds the image the request is made from, before it is stored
// or queued, so that it is checked on and generated from exactly that
// image. An upload is written once (genpipe.UploadKey): it is the input
// itself (req.Image), and the API only makes sure it is there and within
// the size limit, from what it saw of the upload before (knownUploads) or
// one read of its size. An upload made through an older URL, which could still
// overwrite it, is copied to the request's own input (copyLegacyUpload).
//
// An objectId that the caller's API key never uploaded answers 422, the
// same whether no key or another key uploaded it, so that objectIds can be
// neither borrowed nor probed (its upload key is in its owner's space).
// 422 rather than 404: the endpoint exists, and what the body refers to is
// unusable.
func (s *Server) pinInput(ctx context.Context, req *genpipe.Request) error {
	key := genpipe.UploadKey(req.Owner, req.ObjectID)
	size, seen := s.uploads.lookup(key)
	if !seen {
		info, err := s.objects.Stat(ctx, key)
		switch genpipe.ErrorCode(err) {
		case "":
			size = info.Size
			s.uploads.present(key, size)
		case genpipe.ENOTFOUND:
			return s.copyLegacyUpload(ctx, req)
		default:
			return unavailableInput(req, err)
		}
	}
	if err := s.checkUploadSize(req, size); err != nil {
		return err
	}
	req.Image = key
	return nil
}

// copyLegacyUpload copies the request's upload from where uploads were
// kept before upload URLs were write-once (genpipe.LegacyUploadKey) to its
// input (genpipe.InputKey), which no upload URL can overwrite, and checks
// the copy's size.
func (s *Server) copyLegacyUpload(ctx context.Context, req *genpipe.Request) error {
	err := s.objects.Copy(ctx, genpipe.LegacyUploadKey(req.Owner, req.ObjectID), genpipe.InputKey(req.ID))
	switch genpipe.ErrorCode(err) {
	case "":
	case genpipe.ENOTFOUND:
		return genpipe.Errorf(genpipe.EUNPROCESSABLE, "objectId %s was never uploaded: PUT the image to its uploadUrl first", req.ObjectID)
	default:
		return unavailableInput(req, err)
	}
	info, err := s.objects.Stat(ctx, genpipe.InputKey(req.ID))
	if err == nil {
		err = s.checkUploadSize(req, info.Size)
	} else {
		err = unavailableInput(req, err)
	}
	if err != nil {
		s.discardInput(ctx, req)
	}
	return err
}

// checkUploadSize refuses an image over the size limit. Only an upload
// made before a lower limit, or before upload URLs were signed for their
// size, can be larger.
func (s *Server) checkUploadSize(req *genpipe.Request, size int64) error {
	if size > s.cfg.maxUpload {
		return genpipe.Errorf(genpipe.ETOOLARGE, "the image uploaded as objectId %s is %d bytes; the most is %d",
			req.ObjectID, size, s.cfg.maxUpload)
	}
	return nil
}

// unavailableInput is the error of a submission whose image the object
// store could not be asked about.
func unavailableInput(req *genpipe.Request, err error) error {
	return fmt.Errorf("find the image of request %s: %w (%w)", req.ID,
		genpipe.Errorf(genpipe.EUNAVAILABLE, "the object store is unavailable; retry later"), err)
}

// discardInput deletes the input copied for a request that was not taken
// in, if one was (see copyLegacyUpload). It runs even when the client went
// away, and a failure only leaves a copy that no request reads.
func (s *Server) discardInput(ctx context.Context, req *genpipe.Request) {
	if req.Image != "" {
		return // the upload itself: nothing was copied
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.objects.Delete(ctx, genpipe.InputKey(req.ID)); err != nil {
		s.cfg.logger.Warn("could not delete the input of a request not taken in", "request", req.ID, "err", err)
	}
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request) {
	req, err := s.findRequest(r)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	view, err := genpipe.NewRequestView(r.Context(), req, s.objects, s.cfg.resultTTL)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	s.withEstimate(r.Context(), req, &view)
	httpjson.Write(w, http.StatusOK, view)
}

// findRequest loads the request named in the path; ids are UUIDs, anything
// else cannot exist. Another owner's request is not found either, with the
// same answer, so that ids cannot be probed.
func (s *Server) findRequest(r *http.Request) (*genpipe.Request, error) {
	id := r.PathValue("id")
	notFound := genpipe.Errorf(genpipe.ENOTFOUND, "request %q not found", id)
	if uuid.Validate(id) != nil {
		return nil, notFound
	}
	req, err := s.store.Request(r.Context(), id)
	switch {
	case genpipe.ErrorCode(err) == genpipe.ENOTFOUND:
		return nil, notFound
	case err != nil:
		return nil, err
	case req.Owner != ownerOf(r):
		return nil, notFound
	}
	return req, nil
}
