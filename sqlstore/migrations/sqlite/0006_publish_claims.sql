-- 0006: publish claims, so that of concurrent submissions with one
-- Idempotency-Key exactly one publishes the request's first event
-- (genpipe.RequestStore.ClaimPublish).

-- Who holds the claim, or last held it.
ALTER TABLE requests ADD COLUMN publish_owner TEXT NOT NULL DEFAULT '';
-- When the holder's lease ends (on the database's clock, in the layout of
-- every time column); NULL when nobody holds the claim.
ALTER TABLE requests ADD COLUMN publish_lease_until TEXT;
