-- 0004: triggers write a request's status history, so that creating a
-- request and advancing it are each one statement, as on PostgreSQL (where
-- a data-modifying WITH writes the history row): the history row commits
-- with the change, and the statement's count of changed rows (which leaves
-- out the trigger's) says whether the request was created or advanced.
--
-- Every UPDATE that sets status is an advance (ApplyStatus sets it only when
-- the new status ranks higher), so it is recorded; a migration that rewrote
-- status would write history rows too.

CREATE TRIGGER request_history_created AFTER INSERT ON requests
BEGIN
    INSERT INTO request_history (request_id, status, error, at)
    VALUES (NEW.id, NEW.status, NEW.error, NEW.updated_at);
END;

CREATE TRIGGER request_history_advanced AFTER UPDATE OF status ON requests
BEGIN
    INSERT INTO request_history (request_id, status, error, at)
    VALUES (NEW.id, NEW.status, NEW.error, NEW.updated_at);
END;
