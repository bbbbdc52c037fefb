-- Optional, on the TARGET (application) database: a role for streamer that can create
-- its three tables once (`streamer init`) and then only insert rows and update its own
-- checkpoint. Run as the database owner.
CREATE ROLE streamer_app WITH LOGIN PASSWORD 'change-me';
GRANT CONNECT, TEMPORARY ON DATABASE payments_main TO streamer_app;
GRANT USAGE, CREATE ON SCHEMA public TO streamer_app;
-- After `streamer init`, CREATE may be revoked:
--   REVOKE CREATE ON SCHEMA public FROM streamer_app;
