-- Run on the SOURCE as the owner of raw_transactions (creating a publication for a
-- table requires owning it). streamer only needs inserts; publishing nothing else keeps
-- update/delete traffic of the legacy poller (processed = true) off the wire.
-- `streamer init` creates the same publication when its role owns the table.
CREATE PUBLICATION streamer FOR TABLE public.raw_transactions WITH (publish = 'insert');
