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
CREATE INDEX ai_calls_running_by_tenant ON ai_calls (tenant, stage, day) WHERE outcome = 'running';

-- Each (tenant, stage, day)'s calls and the durations of its ended calls,
-- kept by triggers in the statement that changes ai_calls: what a budget
-- check reads, in one row, however many calls the day had.
CREATE TABLE ai_call_days (
    tenant      text    NOT NULL,
    stage       text    NOT NULL,
    day         bigint  NOT NULL,
    calls       bigint  NOT NULL DEFAULT 0,
    duration_ms bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, stage, day)
);
-- Budgets reserve a call for every unfinished request of the tenant.
CREATE INDEX requests_tenant_open ON requests (tenant) WHERE status_rank < 4;

CREATE FUNCTION ai_call_days_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ai_call_days AS d (tenant, stage, day, calls, duration_ms)
        VALUES (NEW.tenant, NEW.stage, NEW.day, 1, NEW.duration_ms)
        ON CONFLICT (tenant, stage, day) DO UPDATE SET calls = d.calls + 1, duration_ms = d.duration_ms + excluded.duration_ms;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE ai_call_days SET duration_ms = duration_ms + NEW.duration_ms - OLD.duration_ms
        WHERE tenant = NEW.tenant AND stage = NEW.stage AND day = NEW.day;
        RETURN NEW;
    END IF;
    UPDATE ai_call_days SET calls = calls - 1, duration_ms = duration_ms - OLD.duration_ms
    WHERE tenant = OLD.tenant AND stage = OLD.stage AND day = OLD.day;
    RETURN OLD;
END $$;

CREATE TRIGGER ai_calls_count AFTER INSERT OR DELETE OR UPDATE OF duration_ms ON ai_calls
    FOR EACH ROW EXECUTE FUNCTION ai_call_days_count();
