-- 0015: the backlog's index no longer names published, so that marking a
-- request published writes no index. The backlog count reads the flag of
-- the received rows from the table, at most once a second per API process.
DROP INDEX requests_backlog;
CREATE INDEX requests_received ON requests (id) WHERE status = 'received';
