-- 0010: the ledger of paid AI calls (genpipe.Ledger): one row per call that
-- reached the model, written before it is sent, finished with its outcome.
-- Times are Unix milliseconds of the worker's clock; day is the UTC day of
-- started_ms (days since 1970-01-01), which usage and budgets group by.

CREATE TABLE ai_calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    tenant      TEXT    NOT NULL,
    replay      INTEGER NOT NULL DEFAULT 0,
    attempt     INTEGER NOT NULL,
    -- The claim owner: while the call runs, the claim's lease says its
    -- worker is alive.
    owner       TEXT    NOT NULL,
    day         INTEGER NOT NULL,
    started_ms  INTEGER NOT NULL,
    -- The worker's last sign of life at the call: what an abandoned call
    -- is charged up to.
    alive_ms    INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'aborted', 'abandoned'))
);

CREATE INDEX ai_calls_day ON ai_calls (day, tenant, stage);
CREATE INDEX ai_calls_request ON ai_calls (request_id, stage);
CREATE INDEX ai_calls_running ON ai_calls (owner) WHERE outcome = 'running';
CREATE INDEX ai_calls_running_by_tenant ON ai_calls (tenant, stage, day) WHERE outcome = 'running';

-- Each (tenant, stage, day)'s calls and the durations of its ended calls,
-- kept by triggers in the statement that changes ai_calls: what a budget
-- check reads, in one row, however many calls the day had.
CREATE TABLE ai_call_days (
    tenant      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    day         INTEGER NOT NULL,
    calls       INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, stage, day)
);
-- Budgets reserve a call for every unfinished request of the tenant.
CREATE INDEX requests_tenant_open ON requests (tenant) WHERE status_rank < 4;

CREATE TRIGGER ai_calls_insert AFTER INSERT ON ai_calls BEGIN
    INSERT OR IGNORE INTO ai_call_days (tenant, stage, day) VALUES (NEW.tenant, NEW.stage, NEW.day);
    UPDATE ai_call_days SET calls = calls + 1, duration_ms = duration_ms + NEW.duration_ms
    WHERE tenant = NEW.tenant AND stage = NEW.stage AND day = NEW.day;
END;

CREATE TRIGGER ai_calls_update AFTER UPDATE OF duration_ms ON ai_calls BEGIN
    UPDATE ai_call_days SET duration_ms = duration_ms + NEW.duration_ms - OLD.duration_ms
    WHERE tenant = NEW.tenant AND stage = NEW.stage AND day = NEW.day;
END;

CREATE TRIGGER ai_calls_delete AFTER DELETE ON ai_calls BEGIN
    UPDATE ai_call_days SET calls = calls - 1, duration_ms = duration_ms - OLD.duration_ms
    WHERE tenant = OLD.tenant AND stage = OLD.stage AND day = OLD.day;
END;
