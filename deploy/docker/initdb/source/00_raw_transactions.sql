-- The data lake's table, as in streamer/demo.py (SOURCE_DDL; a test keeps them equal).
-- Runs first in the source container's /docker-entrypoint-initdb.d (as postgres, in
-- payments_lake); then sql/01_role.sql and sql/02_publication.sql.
CREATE TABLE IF NOT EXISTS raw_transactions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    data JSONB NOT NULL,
    merchant JSONB NOT NULL,
    transactional_id UUID NOT NULL,
    created_at TIMESTAMP DEFAULT NOW(),
    processed BOOLEAN DEFAULT FALSE,
    processed_at TIMESTAMP
);
