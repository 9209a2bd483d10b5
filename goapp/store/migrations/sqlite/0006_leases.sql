-- Leases (goapp.engine.bots): a duty that one instance of several must do at a time, such
-- as thinking a bot's move, is leased by name until expires_at (epoch milliseconds). An
-- instance takes a lease with a conditional upsert (free, expired or already its own:
-- Store.acquire_lease), renews it while it works and deletes it when done; when it dies
-- the lease expires and another instance takes the duty over. Keep in step with
-- ../postgres/0006_leases.sql.

CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
