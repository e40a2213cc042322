-- 0002: request owners (a hash of the API key that made the request), the
-- idempotency key made unique per owner, and an index for the backlog count.
--
-- 0001 declared idempotency_key UNIQUE on its own. SQLite cannot drop that
-- constraint, and rebuilding requests here is no option either: foreign keys
-- are on inside the migration's transaction, so dropping the old table would
-- cascade to the history and the webhook outbox. So the old column is
-- renamed, emptied (NULLs never collide) and left unused, and the key moves
-- to a new column that is unique per owner.

ALTER TABLE requests RENAME COLUMN idempotency_key TO idempotency_key_0001;
ALTER TABLE requests ADD COLUMN idempotency_key TEXT;
ALTER TABLE requests ADD COLUMN owner TEXT NOT NULL DEFAULT '';
UPDATE requests SET idempotency_key = idempotency_key_0001, idempotency_key_0001 = NULL
WHERE idempotency_key_0001 IS NOT NULL;

-- Also the ON CONFLICT target of CreateRequest; NULL keys never collide.
CREATE UNIQUE INDEX requests_owner_idempotency_key ON requests (owner, idempotency_key);

-- Backlog counts these rows; the index holds only them, so counting stays
-- cheap however many requests are done.
CREATE INDEX requests_backlog ON requests (id) WHERE status = 'received' AND published;
