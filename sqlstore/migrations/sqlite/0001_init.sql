-- 0001: requests, their status history and the webhook outbox.
--
-- Timestamps are TEXT in one fixed-width UTC layout (2006-01-02T15:04:05.000000Z,
-- see sqlite.formatTime), so that comparing them as strings compares them as
-- times: DueWebhooks relies on it.

CREATE TABLE requests (
    id              TEXT    PRIMARY KEY,
    object_id       TEXT    NOT NULL,
    style           TEXT    NOT NULL,
    title           TEXT    NOT NULL DEFAULT '',
    description     TEXT    NOT NULL DEFAULT '',
    webhook_url     TEXT    NOT NULL DEFAULT '',
    -- NULL when the client sent no Idempotency-Key: NULLs never collide.
    idempotency_key TEXT    UNIQUE,
    status          TEXT    NOT NULL,
    -- genpipe.Status.Rank of status: ApplyStatus is one conditional UPDATE
    -- (WHERE status_rank < new rank), so a stale event can never move a
    -- request backwards, whatever the interleaving.
    status_rank     INTEGER NOT NULL,
    result_png_key  TEXT    NOT NULL DEFAULT '',
    result_pdf_key  TEXT    NOT NULL DEFAULT '',
    result_pptx_key TEXT    NOT NULL DEFAULT '',
    error           TEXT    NOT NULL DEFAULT '',
    -- The first event is durably in Kafka; until then the request is invisible.
    published       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

CREATE TABLE request_history (
    -- Insertion order is the order in which changes were applied.
    id         INTEGER PRIMARY KEY,
    request_id TEXT    NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    status     TEXT    NOT NULL,
    error      TEXT    NOT NULL DEFAULT '',
    at         TEXT    NOT NULL,
    -- Also the index History reads through.
    UNIQUE (request_id, status)
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    request_id      TEXT    NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      TEXT    NOT NULL,
    -- A redelivered event never queues a second message.
    UNIQUE (request_id, status)
);

-- DueWebhooks scans only the pending deliveries, in due order.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
