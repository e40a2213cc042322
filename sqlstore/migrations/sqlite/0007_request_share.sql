-- 0007: each request's share (genpipe.Share): the tenant of the API key
-- that made it, the priority it asked for, and the tenant's weight when it
-- was submitted. Requests stored before tenants were the default tenant's,
-- at normal priority and weight 1, as the defaults say; the CHECKs apply
-- to those rows as they are added.

ALTER TABLE requests ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default' CHECK (tenant <> '');
ALTER TABLE requests ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low'));
ALTER TABLE requests ADD COLUMN weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000);
