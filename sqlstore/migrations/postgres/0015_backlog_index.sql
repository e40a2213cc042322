-- 0015: the backlog's index no longer names published, so that marking a
-- request published changes no indexed column: PostgreSQL can then update
-- the row in place (a HOT update) instead of adding an entry to each of the
-- table's four indexes, and pages keep a tenth free for that. The backlog
-- count reads the flag of the received rows from the table, at most once a
-- second per API process.
DROP INDEX requests_backlog;
CREATE INDEX requests_received ON requests (id) WHERE status = 'received';
ALTER TABLE requests SET (fillfactor = 90);
