-- 0002: request owners (a hash of the API key that made the request), the
-- idempotency key made unique per owner, and an index for the backlog count.

ALTER TABLE requests ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE requests DROP CONSTRAINT requests_idempotency_key_key;
-- Also the ON CONFLICT target of CreateRequest; NULL keys never collide.
CREATE UNIQUE INDEX requests_owner_idempotency_key ON requests (owner, idempotency_key);

-- Backlog counts these rows; the index holds only them, so counting stays
-- cheap however many requests are done.
CREATE INDEX requests_backlog ON requests (id) WHERE status = 'received' AND published;
