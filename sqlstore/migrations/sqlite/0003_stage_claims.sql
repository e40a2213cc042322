-- 0003: stage claims, so that each request's AI call succeeds at most once
-- (genpipe.Claim), and room in the status ranks for a replayed failed
-- request to end done (genpipe.Status.Rank: failed 4, done and rejected 5).

CREATE TABLE stage_claims (
    -- No foreign key: a stage needs only the id the event carries.
    request_id  TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    -- running (held by owner until lease_until), done or failed.
    state       TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    lease_until TEXT    NOT NULL,
    -- The outcome: the stage's output when done, the reason when failed.
    output      TEXT    NOT NULL DEFAULT '',
    takes       INTEGER NOT NULL DEFAULT 1,
    replay      INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (request_id, stage)
);

UPDATE requests SET status_rank = 5 WHERE status IN ('done', 'rejected');
