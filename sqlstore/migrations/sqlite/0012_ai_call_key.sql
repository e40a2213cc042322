-- 0012: one row per AI call even when its StartCall is retried (a
-- connection lost after the INSERT committed made the worker write the call
-- again, and the ledger count it twice). A call is its request, stage,
-- replay, claim owner (unique per handling) and attempt. Rows written twice
-- before this are dropped; the delete trigger takes them off the day's
-- counters.
DELETE FROM ai_calls WHERE id NOT IN (SELECT min(id) FROM ai_calls GROUP BY request_id, stage, replay, owner, attempt);
CREATE UNIQUE INDEX ai_calls_key ON ai_calls (request_id, stage, replay, owner, attempt);
