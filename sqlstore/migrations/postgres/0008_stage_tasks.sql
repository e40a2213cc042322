-- 0008: the scheduling queue of the AI stages (genpipe.TaskQueue). A
-- stage's consumer stores each record as a waiting task; worker processes
-- take tasks by priority, then virtual start tag (start-time fair queueing
-- per tenant), with a lease. A finished task is deleted.

CREATE TABLE stage_tasks (
    id          bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stage       text             NOT NULL,
    request_id  text             NOT NULL,
    replay      integer          NOT NULL,
    tenant      text             NOT NULL,
    priority    text             NOT NULL, -- as the request asked
    weight      integer          NOT NULL,
    -- The level it competes at: its priority's rank (high 3, normal 2,
    -- low 1), raised by aging; and its virtual start tag there.
    level       integer          NOT NULL,
    vstart      double precision NOT NULL,
    value       bytea            NOT NULL,
    traceparent text             NOT NULL,
    topic       text             NOT NULL,
    part        integer          NOT NULL,
    record_off  bigint           NOT NULL,
    enqueued_at timestamptz      NOT NULL,
    leveled_at  timestamptz      NOT NULL, -- when it reached its level: aging counts from it
    state       text             NOT NULL CHECK (state IN ('waiting', 'running')),
    owner       text             NOT NULL DEFAULT '',
    lease_until timestamptz,               -- running: when it may be taken over
    UNIQUE (stage, request_id, replay)
);
-- The schedule: the next waiting task is the first row of the stage.
CREATE INDEX stage_tasks_next ON stage_tasks (stage, level DESC, vstart, id) WHERE state = 'waiting';
CREATE INDEX stage_tasks_aging ON stage_tasks (stage, leveled_at) WHERE state = 'waiting' AND level < 3;
CREATE INDEX stage_tasks_running ON stage_tasks (stage, owner, lease_until) WHERE state = 'running';

-- Per stage and level, the virtual time: the largest tag taken there. Its
-- rows also serialize the stage's takers (locked FOR UPDATE).
CREATE TABLE stage_clocks (
    stage text             NOT NULL,
    level integer          NOT NULL,
    vtime double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (stage, level)
);

-- Per stage, level and tenant, the finish tag of the tenant's last task.
CREATE TABLE stage_tenants (
    stage  text             NOT NULL,
    level  integer          NOT NULL,
    tenant text             NOT NULL,
    finish double precision NOT NULL,
    PRIMARY KEY (stage, level, tenant)
);
