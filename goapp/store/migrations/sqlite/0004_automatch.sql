-- Automatch requests (goapp.match). A request waits until the pairing policy finds it an
-- opponent; Store.claim_automatch_pair then marks both requests paired in one write
-- transaction (SQLite's single writer makes claims serial), so a request is paired at most
-- once. Keep in step with ../postgres/0004_automatch.sql.

CREATE TABLE automatch_requests (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    speed       TEXT    NOT NULL CHECK (speed IN ('blitz', 'live', 'correspondence')),
    -- board sizes asked for, as a bit mask: 1 = 9x9, 2 = 13x13, 4 = 19x19
    sizes       INTEGER NOT NULL CHECK (sizes BETWEEN 1 AND 7),
    rated       INTEGER NOT NULL CHECK (rated IN (0, 1)),
    -- the player's rating when the request was made (the pairing compares these)
    rating      REAL    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'waiting'
                        CHECK (status IN ('waiting', 'paired', 'cancelled')),
    created_at  INTEGER NOT NULL,
    closed_at   INTEGER,
    -- once paired: the other request, its player, and the game (NULL until created)
    partner_id  INTEGER,
    opponent_id INTEGER REFERENCES users (id),
    game_id     INTEGER REFERENCES games (id)
) STRICT;

-- one waiting request per player
CREATE UNIQUE INDEX automatch_waiting_user ON automatch_requests (user_id) WHERE status = 'waiting';
-- the waiting requests of a speed, oldest first (pairing)
CREATE INDEX automatch_waiting ON automatch_requests (speed, created_at) WHERE status = 'waiting';
