-- 0008: the scheduling queue of the AI stages (genpipe.TaskQueue). A
-- stage's consumer stores each record as a waiting task; worker processes
-- take tasks by priority, then virtual start tag (start-time fair queueing
-- per tenant), with a lease. A finished task is deleted.

CREATE TABLE stage_tasks (
    id          INTEGER PRIMARY KEY,
    stage       TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    replay      INTEGER NOT NULL,
    tenant      TEXT    NOT NULL,
    priority    TEXT    NOT NULL, -- as the request asked
    weight      INTEGER NOT NULL,
    -- The level it competes at: its priority's rank (high 3, normal 2,
    -- low 1), raised by aging; and its virtual start tag there.
    level       INTEGER NOT NULL,
    vstart      REAL    NOT NULL,
    value       BLOB    NOT NULL,
    traceparent TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    part        INTEGER NOT NULL,
    record_off  INTEGER NOT NULL,
    enqueued_at TEXT    NOT NULL,
    leveled_at  TEXT    NOT NULL, -- when it reached its level: aging counts from it
    state       TEXT    NOT NULL, -- waiting or running
    owner       TEXT    NOT NULL DEFAULT '',
    lease_until TEXT,             -- running: when it may be taken over
    UNIQUE (stage, request_id, replay)
);
-- The schedule: the next waiting task is the first row of the stage.
CREATE INDEX stage_tasks_next ON stage_tasks (stage, level DESC, vstart, id) WHERE state = 'waiting';
CREATE INDEX stage_tasks_aging ON stage_tasks (stage, leveled_at) WHERE state = 'waiting' AND level < 3;
CREATE INDEX stage_tasks_running ON stage_tasks (stage, owner, lease_until) WHERE state = 'running';

-- Per stage and level, the virtual time: the largest tag taken there. Its
-- rows also serialize the stage's takers (PostgreSQL locks them).
CREATE TABLE stage_clocks (
    stage TEXT    NOT NULL,
    level INTEGER NOT NULL,
    vtime REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (stage, level)
);

-- Per stage, level and tenant, the finish tag of the tenant's last task.
CREATE TABLE stage_tenants (
    stage  TEXT    NOT NULL,
    level  INTEGER NOT NULL,
    tenant TEXT    NOT NULL,
    finish REAL    NOT NULL,
    PRIMARY KEY (stage, level, tenant)
);
