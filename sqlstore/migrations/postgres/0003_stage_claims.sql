-- 0003: stage claims, so that each request's AI call succeeds at most once
-- (genpipe.Claim), and room in the status ranks for a replayed failed
-- request to end done (genpipe.Status.Rank: failed 4, done and rejected 5).

CREATE TABLE stage_claims (
    -- text, not uuid, and no foreign key: a stage needs only the id the
    -- event carries.
    request_id  text        NOT NULL,
    stage       text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    owner       text        NOT NULL,
    lease_until timestamptz NOT NULL,
    -- The outcome: the stage's output when done, the reason when failed.
    output      text        NOT NULL DEFAULT '',
    takes       integer     NOT NULL DEFAULT 1,
    replay      integer     NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (request_id, stage)
);

ALTER TABLE requests DROP CONSTRAINT requests_status_rank_check;
UPDATE requests SET status_rank = 5 WHERE status IN ('done', 'rejected');
ALTER TABLE requests ADD CONSTRAINT requests_status_rank_check CHECK (status_rank BETWEEN 1 AND 5);
