-- 0014: the object key a request's image is read from when it is its
-- write-once upload itself (genpipe.Job.Image); '' for requests whose
-- upload the API copied to inputs/<id>, as it did for every request before
-- upload URLs were write-once.
ALTER TABLE requests ADD COLUMN image_key TEXT NOT NULL DEFAULT '';
