-- 0001: requests, their status history and the webhook outbox.
--
-- The same tables as sqlite's 0001, in PostgreSQL's own types: uuid ids,
-- timestamptz times (microsecond precision), identity columns.

CREATE TABLE requests (
    id              uuid        PRIMARY KEY,
    object_id       text        NOT NULL,
    style           text        NOT NULL,
    title           text        NOT NULL DEFAULT '',
    description     text        NOT NULL DEFAULT '',
    webhook_url     text        NOT NULL DEFAULT '',
    -- NULL when the client sent no Idempotency-Key: NULLs never collide.
    idempotency_key text        UNIQUE,
    status          text        NOT NULL,
    -- genpipe.Status.Rank of status: ApplyStatus is one conditional UPDATE
    -- (WHERE status_rank < new rank), so a stale event can never move a
    -- request backwards, whatever the interleaving.
    status_rank     smallint    NOT NULL CHECK (status_rank BETWEEN 1 AND 4),
    result_png_key  text        NOT NULL DEFAULT '',
    result_pdf_key  text        NOT NULL DEFAULT '',
    result_pptx_key text        NOT NULL DEFAULT '',
    error           text        NOT NULL DEFAULT '',
    -- The first event is durably in Kafka; until then the request is invisible.
    published       boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE request_history (
    -- Insertion order is the order in which changes were applied: every
    -- insert happens while its request's row is locked by the UPDATE that
    -- advanced it, so the ids of one request's changes increase in the
    -- order they were applied.
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id uuid        NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    status     text        NOT NULL,
    error      text        NOT NULL DEFAULT '',
    at         timestamptz NOT NULL,
    -- Also the index History reads through.
    UNIQUE (request_id, status)
);

CREATE TABLE webhook_deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id      uuid        NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    status          text        NOT NULL,
    url             text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'delivered', 'abandoned')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    -- A redelivered event never queues a second message.
    UNIQUE (request_id, status)
);

-- DueWebhooks scans only the pending deliveries, in due order.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
