-- 0013: how many slides a done request's deck has (genpipe.Result.Slides):
-- text too long for one slide continues on further ones, each with a PNG
-- of its own. 0 for requests done before decks, which had one slide.
ALTER TABLE requests ADD COLUMN result_slides INTEGER NOT NULL DEFAULT 0;
