-- 0010: the ledger of paid AI calls (genpipe.Ledger): one row per call that
-- reached the model, written before it is sent, finished with its outcome.
-- Times are Unix milliseconds of the worker's clock; day is the UTC day of
-- started_ms (days since 1970-01-01), which usage and budgets group by.

CREATE TABLE ai_calls (
    id          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  text    NOT NULL,
    stage       text    NOT NULL,
    tenant      text    NOT NULL,
    replay      integer NOT NULL DEFAULT 0,
    attempt     integer NOT NULL,
    -- The claim owner: while the call runs, the claim's lease says its
    -- worker is alive.
    owner       text    NOT NULL,
    day         bigint  NOT NULL,
    started_ms  bigint  NOT NULL,
    -- The worker's last sign of life at the call: what an abandoned call
    -- is charged up to.
    alive_ms    bigint  NOT NULL,
    duration_ms bigint  NOT NULL DEFAULT 0,
    outcome     text    NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'aborted', 'abandoned'))
);

CREATE INDEX ai_calls_day ON ai_calls (day, tenant, stage);
CREATE INDEX ai_calls_request ON ai_calls (request_id, stage);
CREATE INDEX ai_calls_running ON ai_calls (owner) WHERE outcome = 'running';
-- Budgets reserve a call for every unfinished request of the tenant.
CREATE INDEX requests_tenant_open ON requests (tenant) WHERE status_rank < 4;
