package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
)

// requestColumns are the columns scanRequest reads, in its order.
const requestColumns = `id, object_id, style, title, description, webhook_url,
	COALESCE(idempotency_key, ''), owner, status, result_png_key, result_pdf_key, result_pptx_key,
	error, created_at, updated_at, tenant, priority, weight, start_by, result_slides, image_key`

const (
	// insertRequest stores a new request unless its owner's idempotency
	// key is taken (then it changes nothing: 0 rows). An empty key is
	// stored as NULL, which never collides. Of concurrent inserts with one
	// key, the database lets the first commit and turns the others, which
	// wait for it, into DO NOTHING. The dialect's createRequest also
	// records the received change (withHistory).
	insertRequest = `INSERT INTO requests (id, object_id, style, title, description, webhook_url,
		idempotency_key, owner, status, status_rank, created_at, updated_at, tenant, priority, weight, start_by, image_key)
	VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8, $9, $10, $11, $11, $12, $13, $14, $15, $16)
	ON CONFLICT (owner, idempotency_key) DO NOTHING`

	// insertClaimedRequest is insertRequest that also takes the new
	// request's publish claim for owner $17 (its id) and a lease of $18
	// seconds; see createClaimedSQL.
	insertClaimedRequest = `INSERT INTO requests (id, object_id, style, title, description, webhook_url,
		idempotency_key, owner, status, status_rank, created_at, updated_at, tenant, priority, weight, start_by,
		image_key, publish_owner, publish_lease_until)
	VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8, $9, $10, $11, $11, $12, $13, $14, $15, $16, $17, %s)
	ON CONFLICT (owner, idempotency_key) DO NOTHING`

	// updateRequestStatus is the whole of ApplyStatus's decision: it
	// changes the row only when the new status ranks higher, atomically.
	// The dialect's advanceRequest also records the change (withHistory).
	updateRequestStatus = `UPDATE requests
	SET status = $2, status_rank = $3, result_png_key = $4, result_pdf_key = $5, result_pptx_key = $6,
		error = $7, updated_at = $8, result_slides = $9
	WHERE id = $1 AND status_rank < $3`

	selectRequestByKey = `SELECT ` + requestColumns + ` FROM requests WHERE owner = $1 AND idempotency_key = $2`

	selectPublishedRequest = `SELECT ` + requestColumns + ` FROM requests WHERE id = $1 AND published`

	markPublished = `UPDATE requests SET published = TRUE WHERE id = $1`

	// releasePublish ends owner's publish lease; the next claimPublish
	// takes it at once.
	releasePublish = `UPDATE requests SET publish_lease_until = NULL
	WHERE id = $1 AND publish_owner = $2 AND NOT published`

	selectPublished = `SELECT published FROM requests WHERE id = $1`

	requestExists = `SELECT EXISTS (SELECT 1 FROM requests WHERE id = $1)`

	// countBacklog reads the received rows through the requests_received
	// index, whose WHERE it repeats word for word (a parameter would hide
	// the match from the planner), and their published flag from the
	// table: published is in no index, so that marking a request writes
	// none (migration 0015).
	countBacklog = `SELECT count(*) FROM requests WHERE status = 'received' AND published`

	selectHistory = `SELECT h.status, h.error, h.at, r.result_png_key, r.result_pdf_key, r.result_pptx_key, r.result_slides
	FROM request_history h JOIN requests r ON r.id = h.request_id
	WHERE h.request_id = $1 AND r.published
	ORDER BY h.id`
)

// CreateRequest stores r in status received, not yet published, and
// returns the stored copy (r itself is not modified). When a request with
// the same Owner and non-empty IdempotencyKey exists, published or not, it
// returns that one and created=false; concurrent calls with one owner and
// key create exactly one request. r.ID must be a UUID (EINVALID
// otherwise); an ID already stored is an ECONFLICT error. r's Share is
// stored with its defaults filled in (genpipe.Share.Normalized); one out of
// range is an EINVALID error. r's Status, Result, Error and timestamps are
// ignored.
func (s *Store) CreateRequest(ctx context.Context, r *genpipe.Request) (*genpipe.Request, bool, error) {
	return s.createRequest(ctx, r, 0)
}

// CreateClaimed is CreateRequest that also takes the publish claim of the
// request it creates, for owner r.ID and lease, in the same statement: a
// submission writes once before it publishes, not twice. For a request
// that exists with r's idempotency key it takes nothing; see
// genpipe.RequestStore. A lease under a millisecond is an EINVALID error.
func (s *Store) CreateClaimed(ctx context.Context, r *genpipe.Request, lease time.Duration) (*genpipe.Request, bool, error) {
	if lease < time.Millisecond {
		return nil, false, genpipe.Errorf(genpipe.EINVALID, "publish lease %v: want at least 1ms", lease)
	}
	return s.createRequest(ctx, r, lease)
}

// createRequest stores r, with its publish claim held by r.ID for lease
// unless lease is 0. On SQLite the insert joins the concurrent writes of
// other submissions in one transaction (see groupCommit); on PostgreSQL
// their inserts are one statement (see batcher, createBatch).
func (s *Store) createRequest(ctx context.Context, r *genpipe.Request, lease time.Duration) (*genpipe.Request, bool, error) {
	if r.ID == "" {
		return nil, false, genpipe.Errorf(genpipe.EINVALID, "request has no id")
	}
	if !validID(r.ID) {
		return nil, false, genpipe.Errorf(genpipe.EINVALID, "request id %q is not a UUID", r.ID)
	}
	share := r.Share.Normalized()
	if err := checkShare(share); err != nil {
		return nil, false, err
	}
	stored := &genpipe.Request{ID: r.ID, Job: r.Job, WebhookURL: r.WebhookURL, IdempotencyKey: r.IdempotencyKey,
		Owner: r.Owner, Share: share, Status: genpipe.StatusReceived, StartBy: storedTime(r.StartBy)}
	stored.CreatedAt = now()
	stored.UpdatedAt = stored.CreatedAt

	if s.writes != nil {
		switch inserted, err := s.writes.do(ctx, write{create: &newRow{stored, lease}}); {
		case err == nil && inserted:
			return stored, true, nil
		case err == nil:
			// Its key is taken, by a request committed before the batch's
			// statement ran (ON CONFLICT waited for it).
			twin, err := scanRequest(s.read.QueryRowContext(ctx, selectRequestByKey, r.Owner, r.IdempotencyKey))
			if !errors.Is(err, sql.ErrNoRows) {
				if err != nil {
					return nil, false, s.fail("create request "+r.ID+": read the request with its idempotency key", err)
				}
				return twin, false, nil
			}
			// Deleted since: create it on its own.
		case !errors.Is(err, errAlone):
			return nil, false, s.fail("create request "+r.ID, err)
		}
		// Not settled by its batch (its id stored, or the batch failed on
		// someone's id), or its twin gone: on its own it finds which.
	}
	query, args := s.insert(stored, lease)
	var twin *genpipe.Request
	err := s.grouped(ctx, []string{query, selectRequestByKey}, func(w writer) error {
		n, err := rowsAffected(w.exec(query, args...))
		if s.d.isUniqueViolation(err) { // the key has its own ON CONFLICT: this is the id
			return genpipe.Errorf(genpipe.ECONFLICT, "request %s already exists", r.ID)
		}
		if err != nil || n > 0 {
			return err
		}
		// The idempotency key is taken: return its request, read where
		// the insert ran, which sees it even if it is not committed yet.
		if twin, err = scanRequest(w.queryRow(selectRequestByKey, r.Owner, r.IdempotencyKey)); err != nil {
			return fmt.Errorf("read request with its idempotency key: %w", err)
		}
		return nil
	})
	switch {
	case genpipe.ErrorCode(err) != "":
		return nil, false, err
	case err != nil:
		return nil, false, s.fail("create request "+r.ID, err)
	case twin != nil:
		return twin, false, nil
	}
	return stored, true, nil
}

// insert returns the statement that inserts r, as stored, with its
// publish claim held by r.ID for lease unless lease is 0, and its
// arguments.
func (s *Store) insert(r *genpipe.Request, lease time.Duration) (query string, args []any) {
	query, args = s.d.createRequest, []any{r.ID, r.ObjectID, r.Style, r.Title, r.Description,
		r.WebhookURL, r.IdempotencyKey, r.Owner, genpipe.StatusReceived, genpipe.StatusReceived.Rank(),
		s.d.time(r.CreatedAt), r.Tenant, r.Priority, r.Weight, s.nullTime(r.StartBy), r.Image}
	if lease > 0 {
		query, args = s.d.createClaimed, append(args, r.ID, lease.Seconds())
	}
	return query, args
}

// checkShare reports a share, defaults filled in, that the store refuses.
func checkShare(s genpipe.Share) error {
	switch {
	case len(s.Tenant) > genpipe.MaxTenantLen:
		return genpipe.Errorf(genpipe.EINVALID, "tenant name of %d bytes: the most is %d", len(s.Tenant), genpipe.MaxTenantLen)
	case !s.Priority.Valid():
		return genpipe.Errorf(genpipe.EINVALID, "unknown priority %q", s.Priority)
	case s.Weight < 1 || s.Weight > genpipe.MaxWeight:
		return genpipe.Errorf(genpipe.EINVALID, "weight %d: want 1 to %d", s.Weight, genpipe.MaxWeight)
	}
	return nil
}

// MarkPublished records that the request's first event is durably in
// Kafka, so that Request and History find it. Marking it again is harmless.
// An unknown request is an ENOTFOUND error.
func (s *Store) MarkPublished(ctx context.Context, id string) error {
	if !validID(id) {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	if s.writes != nil {
		found, err := s.writes.do(ctx, write{mark: id})
		switch {
		case errors.Is(err, errAlone):
		case err != nil:
			return s.fail("mark request "+id+" published", err)
		case !found:
			return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
		default:
			return nil
		}
	}
	err := s.grouped(ctx, []string{markPublished}, func(w writer) error {
		n, err := rowsAffected(w.exec(markPublished, id))
		if err == nil && n == 0 {
			err = genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
		}
		return err
	})
	if err != nil && genpipe.ErrorCode(err) == "" {
		return s.fail("mark request "+id+" published", err)
	}
	return err
}

// createClaimedSQL returns d's insertClaimedRequest, its lease on the
// database's clock (as claimPublishSQL's), with the received change
// recorded.
func createClaimedSQL(d *dialect) string {
	return d.withHistory(fmt.Sprintf(insertClaimedRequest, d.later("$18")))
}

// claimPublishSQL returns d's statement that takes the publish claim of
// request $1 for owner $2 and a lease of $3 seconds: it changes the row,
// and so reports one row, only when the request is unpublished and nobody
// holds a running lease. Concurrent callers serialize on the row
// (PostgreSQL's losers re-check the WHERE against the winner's row; SQLite
// has one writer), so exactly one gets it. Leases are on the database's
// clock, as stage claims' are.
func claimPublishSQL(d *dialect) string {
	return `UPDATE requests SET publish_owner = $2, publish_lease_until = ` + d.later("$3") + `
	WHERE id = $1 AND NOT published AND (publish_lease_until IS NULL OR publish_lease_until < ` + d.clock + `)`
}

// ClaimPublish takes the claim on publishing request id's first event for
// owner, or reports who has it; see genpipe.RequestStore.
func (s *Store) ClaimPublish(ctx context.Context, id, owner string, lease time.Duration) (genpipe.PublishState, error) {
	switch {
	case owner == "":
		return "", genpipe.Errorf(genpipe.EINVALID, "publish claim of %s has no owner", id)
	case lease < time.Millisecond:
		return "", genpipe.Errorf(genpipe.EINVALID, "publish lease %v: want at least 1ms", lease)
	case !validID(id):
		return "", genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, s.d.claimPublish, id, owner, lease.Seconds()))
	if err != nil {
		return "", s.fail("claim publishing "+id, err)
	}
	if n > 0 {
		return genpipe.PublishClaimed, nil
	}
	// Published, held, or no such request. Read on the write pool, which
	// has just seen the row.
	var published bool
	err = s.write.QueryRowContext(ctx, selectPublished, id).Scan(&published)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	case err != nil:
		return "", s.fail("claim publishing "+id, err)
	case published:
		return genpipe.Published, nil
	}
	return genpipe.PublishHeld, nil
}

// ReleasePublish gives owner's publish claim of request id back; see
// genpipe.RequestStore.
func (s *Store) ReleasePublish(ctx context.Context, id, owner string) error {
	if !validID(id) {
		return nil // no such request, so no claim to give back
	}
	if _, err := s.write.ExecContext(ctx, releasePublish, id, owner); err != nil {
		return s.fail("release publishing "+id, err)
	}
	return nil
}

// Request returns a published request, or an ENOTFOUND error for an
// unknown or unpublished one. Result is set when the request is done, and
// Webhook once its terminal status's webhook is queued. The two are read
// one after the other: the delivery, queued after the status applied, may
// be a step behind the request, never ahead of it.
func (s *Store) Request(ctx context.Context, id string) (*genpipe.Request, error) {
	if !validID(id) {
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	return s.readRequest(ctx, s.read, id)
}

// readRequest reads a published request on pool, with its webhook.
func (s *Store) readRequest(ctx context.Context, pool *pool, id string) (*genpipe.Request, error) {
	r, err := scanRequest(pool.QueryRowContext(ctx, selectPublishedRequest, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	if err != nil {
		return nil, s.fail("read request "+id, err)
	}
	if r.WebhookURL != "" && r.Status.Terminal() {
		if r.Webhook, err = s.requestWebhook(ctx, id); err != nil {
			return nil, s.fail("read webhook of request "+id, err)
		}
	}
	return r, nil
}

// ApplyStatus moves a request to c.Status if that ranks higher than its
// current status (see genpipe.Status.Rank), storing c.Result and c.Error and
// setting UpdatedAt to c.At (now if zero), and appends c to the history, in
// one statement. Otherwise it changes nothing and returns applied=false. It
// applies to requests not yet published too: the pipeline may run before
// MarkPublished returns. An unknown request is an ENOTFOUND error, an
// unknown status an EINVALID one.
func (s *Store) ApplyStatus(ctx context.Context, c genpipe.StatusChange) (bool, error) {
	if !c.Status.Valid() {
		return false, genpipe.Errorf(genpipe.EINVALID, "unknown status %q", c.Status)
	}
	if !validID(c.RequestID) {
		return false, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", c.RequestID)
	}
	at := c.At
	if at.IsZero() {
		at = now()
	}
	var result genpipe.Result
	if c.Result != nil {
		result = *c.Result
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, s.d.advanceRequest, c.RequestID, c.Status, c.Status.Rank(),
		result.PNGKey, result.PDFKey, result.PPTXKey, c.Error, s.d.time(at), result.Slides))
	if err != nil {
		return false, s.fail("apply status "+string(c.Status)+" to "+c.RequestID, err)
	}
	if n > 0 {
		return true, nil
	}
	// Not an advance, or no such request. Requests are never deleted, so
	// the answer cannot go stale.
	var exists bool
	if err := s.read.QueryRowContext(ctx, requestExists, c.RequestID).Scan(&exists); err != nil {
		return false, s.fail("apply status "+string(c.Status)+" to "+c.RequestID, err)
	}
	if !exists {
		return false, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", c.RequestID)
	}
	return false, nil
}

// History returns the applied status changes of a published request,
// oldest first (in the order they were applied), starting with received;
// the done change carries the Result. An unknown or unpublished request is
// an ENOTFOUND error.
func (s *Store) History(ctx context.Context, id string) ([]genpipe.StatusChange, error) {
	if !validID(id) {
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	rows, err := s.read.QueryContext(ctx, selectHistory, id)
	if err != nil {
		return nil, s.fail("read history of "+id, err)
	}
	defer rows.Close()
	var history []genpipe.StatusChange
	for rows.Next() {
		c := genpipe.StatusChange{RequestID: id}
		var result genpipe.Result
		if err := rows.Scan(&c.Status, &c.Error, timeColumn{&c.At},
			&result.PNGKey, &result.PDFKey, &result.PPTXKey, &result.Slides); err != nil {
			return nil, s.fail("read history of "+id, err)
		}
		if c.Status == genpipe.StatusDone {
			c.Result = resultOf(result)
		}
		history = append(history, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("read history of "+id, err)
	}
	if len(history) == 0 { // every stored request has its received change
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	return history, nil
}

// Backlog counts the published requests still in status received.
func (s *Store) Backlog(ctx context.Context) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, countBacklog).Scan(&n); err != nil {
		return 0, s.fail("count backlog", err)
	}
	return n, nil
}

// scanRequest reads one row of requestColumns.
func scanRequest(row row) (*genpipe.Request, error) {
	var r genpipe.Request
	var result genpipe.Result
	err := row.Scan(&r.ID, &r.ObjectID, &r.Style, &r.Title, &r.Description, &r.WebhookURL,
		&r.IdempotencyKey, &r.Owner, &r.Status, &result.PNGKey, &result.PDFKey, &result.PPTXKey,
		&r.Error, timeColumn{&r.CreatedAt}, timeColumn{&r.UpdatedAt}, &r.Tenant, &r.Priority, &r.Weight, nullTimeColumn{&r.StartBy},
		&result.Slides, &r.Image)
	if err != nil {
		return nil, err
	}
	if r.Status == genpipe.StatusDone {
		r.Result = resultOf(result)
	}
	return &r, nil
}

// resultOf returns &res, or nil when no key is stored.
func resultOf(res genpipe.Result) *genpipe.Result {
	if res == (genpipe.Result{}) {
		return nil
	}
	return &res
}

// validID reports whether id can be a stored request ID: a UUID in the
// canonical form that PostgreSQL returns, so that the ID a caller stores is
// the ID it reads back.
func validID(id string) bool {
	return len(id) == 36 && uuid.Validate(id) == nil && !strings.ContainsAny(id, "ABCDEF")
}

// rowsAffected returns the number of rows an Exec changed, or its error.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// newRow is a request a batch of creates inserts (see createBatch): its
// stored copy, and its publish lease, 0 for none.
type newRow struct {
	r     *genpipe.Request
	lease time.Duration
}

// createBatchSQL returns d's statement that inserts the requests of a
// batch, each as createRequest's insert does, from one array per column
// ($1 to $16; status and rank $17 and $18), and returns the ids it
// inserted; the dialect records their received change (withHistory).
// A lease of 0 takes no publish claim.
func createBatchSQL(d *dialect) string {
	return d.withHistory(insertBatch(d)) + `
	RETURNING request_id`
}

// createAndMarkSQL returns d's statement that runs createBatchSQL's insert
// and marks the requests of array $19 published, and returns each id it
// inserted (false) or marked (true). The mark does not see the rows the
// insert adds: a request is marked after its create returned, in a later
// statement. Written for PostgreSQL, whose history is a common table
// expression (pgChanged, pgRecordHistory), as the arrays are.
func createAndMarkSQL(d *dialect) string {
	return `WITH marked AS (` + markPublishedAny(19) + `),
	changed AS (` + insertBatch(d) + `
		` + pgChanged + `),
	history AS (` + pgRecordHistory + `
		RETURNING request_id)
	SELECT request_id, FALSE FROM history UNION ALL SELECT id, TRUE FROM marked`
}

// insertBatch returns d's insert of createBatchSQL, without the history.
func insertBatch(d *dialect) string {
	return `INSERT INTO requests (id, object_id, style, title, description, webhook_url,
		idempotency_key, owner, status, status_rank, created_at, updated_at, tenant, priority, weight, start_by,
		image_key, publish_owner, publish_lease_until)
	SELECT id, object_id, style, title, description, webhook_url, NULLIF(idempotency_key, ''), owner, $17, $18,
		created_at, created_at, tenant, priority, weight, start_by, image_key, publish_owner,
		CASE WHEN lease > 0 THEN ` + d.later("lease") + ` END
	FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::timestamptz[], $10::text[], $11::text[], $12::int[], $13::timestamptz[], $14::text[], $15::text[],
		$16::float8[])
		AS t(id, object_id, style, title, description, webhook_url, idempotency_key, owner,
			created_at, tenant, priority, weight, start_by, image_key, publish_owner, lease)
	ON CONFLICT (owner, idempotency_key) DO NOTHING`
}

// markPublishedAny returns the statement that marks the requests of array
// parameter $n published and returns those it found.
func markPublishedAny(n int) string {
	return fmt.Sprintf(`UPDATE requests SET published = TRUE WHERE id = ANY($%d::uuid[]) RETURNING id`, n)
}

// A write is one call a batch of writes takes: a request to create
// (CreateRequest, CreateClaimed) or, where create is nil, the id of one
// to mark published (MarkPublished). The two kinds share one batcher: a
// submission marks its request right after creating it, so under load
// its mark rides in the statement of later submissions' creates, and a
// submission costs the server about one statement, not two.
type write struct {
	create *newRow
	mark   string
}

// writeBatch runs writes in one statement and reports, per write, whether
// its request was inserted (see createBatch) or found and marked (see
// markBatch).
func (s *Store) writeBatch(ctx context.Context, writes []write) ([]bool, error) {
	var rows []newRow
	var ids []string
	for _, w := range writes {
		if w.create != nil {
			rows = append(rows, *w.create)
		} else {
			ids = append(ids, w.mark)
		}
	}
	switch {
	case len(ids) == 0:
		return s.createBatch(ctx, rows)
	case len(rows) == 0:
		return s.markBatch(ctx, ids)
	}
	created, marked, err := s.createAndMark(ctx, rows, ids)
	if err != nil {
		return nil, err
	}
	done := make([]bool, 0, len(writes))
	for _, w := range writes {
		if w.create != nil {
			done, created = append(done, created[0]), created[1:]
		} else {
			done, marked = append(done, marked[0]), marked[1:]
		}
	}
	return done, nil
}

// createBatch inserts rows in one statement and reports, per row, whether
// it was inserted. One whose key is taken is not; nor is a second row of
// one id, which the statement leaves out: each goes on its own (see
// createRequest), which finds the twin or the conflict. A unique violation
// (an id stored already) or a deadlock (two batches waiting for each
// other's keys) fails the statement: then every row goes on its own, to
// get its own outcome.
func (s *Store) createBatch(ctx context.Context, rows []newRow) ([]bool, error) {
	if len(rows) == 1 { // the one-row statement: no arrays to build and unpack
		query, args := s.insert(rows[0].r, rows[0].lease)
		n, err := rowsAffected(s.write.ExecContext(ctx, query, args...))
		return []bool{n > 0}, s.batchErr(err)
	}
	order, args := createArgs(rows)
	inserted, err := s.returnedIDs(ctx, s.d.createBatch, args...)
	if err != nil {
		return nil, s.batchErr(err)
	}
	return rowsDone(rows, order, inserted), nil
}

// createAndMark is createBatch and markBatch in one statement.
func (s *Store) createAndMark(ctx context.Context, rows []newRow, ids []string) (created, marked []bool, err error) {
	order, args := createArgs(rows)
	args = append(args, slices.Compact(slices.Sorted(slices.Values(ids))))
	res, err := s.write.QueryContext(ctx, s.d.createAndMark, s.byIDs(args...)...)
	if err != nil {
		return nil, nil, s.batchErr(err)
	}
	defer res.Close()
	inserted, found := make(map[string]bool), make(map[string]bool)
	for res.Next() {
		var id string
		var mark bool
		if err := res.Scan(&id, &mark); err != nil {
			return nil, nil, err
		}
		if mark {
			found[id] = true
		} else {
			inserted[id] = true
		}
	}
	if err := res.Err(); err != nil {
		return nil, nil, s.batchErr(err)
	}
	return rowsDone(rows, order, inserted), idsDone(ids, found), nil
}

// createArgs returns the arguments of createBatchSQL's statement for
// rows, and the order of the rows it takes: each id once, in (owner, key)
// order, so that two batches that wait for each other's uncommitted keys
// wait in the same order: the first to insert one of them goes on, the
// other waits for its commit.
func createArgs(rows []newRow) (order []int, args []any) {
	order = make([]int, 0, len(rows))
	seen := make(map[string]bool, len(rows))
	for i, row := range rows {
		if !seen[row.r.ID] {
			seen[row.r.ID] = true
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return cmp.Or(cmp.Compare(rows[i].r.Owner, rows[j].r.Owner),
			cmp.Compare(rows[i].r.IdempotencyKey, rows[j].r.IdempotencyKey))
	})
	n := len(order)
	var (
		ids, objects, styles, titles, descs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hooks, keys, owners, tenants, prios = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		images, claimers                    = make([]string, n), make([]string, n)
		created, startBy, weights, leases   = make([]time.Time, n), make([]*time.Time, n), make([]int, n), make([]float64, n)
	)
	for k, i := range order {
		r := rows[i].r
		ids[k], objects[k], styles[k], titles[k], descs[k] = r.ID, r.ObjectID, r.Style, r.Title, r.Description
		hooks[k], keys[k], owners[k], tenants[k], prios[k] = r.WebhookURL, r.IdempotencyKey, r.Owner, r.Tenant, string(r.Priority)
		images[k], created[k], weights[k] = r.Image, r.CreatedAt, r.Weight
		if !r.StartBy.IsZero() {
			startBy[k] = &r.StartBy
		}
		if rows[i].lease > 0 {
			claimers[k], leases[k] = r.ID, rows[i].lease.Seconds()
		}
	}
	return order, []any{ids, objects, styles, titles, descs, hooks, keys, owners,
		created, tenants, prios, weights, startBy, images, claimers, leases,
		genpipe.StatusReceived, genpipe.StatusReceived.Rank()}
}

// rowsDone reports, per row, whether the statement that took rows in
// order inserted it: a row it left out (a second of one id) was not.
func rowsDone(rows []newRow, order []int, inserted map[string]bool) []bool {
	done := make([]bool, len(rows))
	for _, i := range order {
		done[i] = inserted[rows[i].r.ID]
	}
	return done
}

// idsDone reports, per id, whether found holds it.
func idsDone(ids []string, found map[string]bool) []bool {
	done := make([]bool, len(ids))
	for i, id := range ids {
		done[i] = found[id]
	}
	return done
}

// markBatch marks ids published in one statement and reports, per id,
// whether it was found. The ids go in sorted, so that the row locks of two
// batches are taken in the same order; a deadlock all the same fails the
// statement, and each id goes on its own.
func (s *Store) markBatch(ctx context.Context, ids []string) ([]bool, error) {
	if len(ids) == 1 {
		n, err := rowsAffected(s.write.ExecContext(ctx, markPublished, ids[0]))
		return []bool{n > 0}, s.batchErr(err)
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(ids)))
	found, err := s.returnedIDs(ctx, s.d.markBatch, s.byIDs(sorted)...)
	if err != nil {
		return nil, s.batchErr(err)
	}
	return idsDone(ids, found), nil
}

// batchErr returns errAlone for a batch's statement that failed on a
// unique violation or a deadlock, for which its calls go on their own,
// and err otherwise.
func (s *Store) batchErr(err error) error {
	if s.d.isUniqueViolation(err) || s.d.isDeadlock(err) {
		return errAlone
	}
	return err
}

// byIDs returns the arguments of a statement that finds requests by an
// array of ids, after the dialect's replan.
func (s *Store) byIDs(args ...any) []any {
	if s.d.replan == nil {
		return args
	}
	return append([]any{s.d.replan}, args...)
}

// returnedIDs runs query, which returns ids, on the write pool.
func (s *Store) returnedIDs(ctx context.Context, query string, args ...any) (map[string]bool, error) {
	rows, err := s.write.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make(map[string]bool)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids[id] = true
	}
	return ids, rows.Err()
}
