-- 0005: webhook deliveries may end failed: refused in a way retrying
-- cannot fix (a 4xx, a redirect, an address that is not public), so not
-- retried for the rest of the retry window (genpipe.WebhookFailed).
-- SQLite's state column has no CHECK, so it needs no migration.

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_state_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_state_check
    CHECK (state IN ('pending', 'delivered', 'abandoned', 'failed'));
