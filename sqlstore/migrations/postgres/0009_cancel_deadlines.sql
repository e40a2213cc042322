-- 0009: cancel and deadlines. A request's start_by (genpipe.Request.StartBy),
-- NULL for none, also on its tasks (genpipe.Task.StartBy), so that a take
-- judges a waiting task's deadline without reading the request; and the
-- index a cancel removes a request's waiting tasks through.

ALTER TABLE requests ADD COLUMN start_by timestamptz;
ALTER TABLE stage_tasks ADD COLUMN start_by timestamptz;
CREATE INDEX stage_tasks_request ON stage_tasks (request_id);
-- The waiting tasks with a deadline, by deadline: each take expires those
-- whose start_by passed, even while every slot is busy.
CREATE INDEX stage_tasks_deadline ON stage_tasks (stage, start_by) WHERE state = 'waiting' AND start_by IS NOT NULL;
