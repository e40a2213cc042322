-- 0011: what the predicted waits are computed from (genpipe.StageLoad).
-- A running task remembers when it was taken; finishing it measures the
-- stage's service time, kept per stage as a mean that favours recent
-- tasks, with the capacity the stage's takers pass.

ALTER TABLE stage_tasks ADD COLUMN taken_at TEXT; -- running: when it was taken

CREATE TABLE stage_rates (
    stage      TEXT    PRIMARY KEY,
    capacity   INTEGER NOT NULL DEFAULT 0,
    service    REAL    NOT NULL DEFAULT 0, -- seconds from take to finish
    samples    INTEGER NOT NULL DEFAULT 0, -- tasks measured
    updated_at TEXT    NOT NULL
);
