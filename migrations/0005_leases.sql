-- Leases: one named job (the callback dialer) run by one node at a time when
-- several nodes share the database. `holder` is the node's name, `until_ms`
-- the epoch ms at which the lease lapses unless the holder renews it.
CREATE TABLE leases (
    name      TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until_ms  BIGINT NOT NULL
);
