-- Run as a superuser on the SOURCE (data lake) cluster.
-- A least-privilege role for streamer: it can log in and use logical replication, and
-- read the source table (for backfills and `verify`). It is not a superuser and owns
-- nothing. Replace the password, or use a password file / secret manager.
CREATE ROLE streamer WITH LOGIN REPLICATION PASSWORD 'change-me';
GRANT CONNECT ON DATABASE payments_lake TO streamer;
GRANT USAGE ON SCHEMA public TO streamer;
GRANT SELECT ON public.raw_transactions TO streamer;

-- Managed services: on Amazon RDS / Aurora use
--   GRANT rds_replication TO streamer;   (instead of the REPLICATION attribute)
-- and set rds.logical_replication = 1 in the parameter group (needs a reboot).
-- Cloud SQL: ALTER USER streamer WITH REPLICATION; and cloudsql.logical_decoding = on.
