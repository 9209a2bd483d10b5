-- goapp schema, SQLite dialect. Timestamps are INTEGER microseconds since the Unix epoch
-- (UTC); JSON columns are TEXT written by the store (msgspec). Keep in step with
-- ../postgres/0001_initial.sql: both backends pass the same test suite.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    name_key      TEXT    NOT NULL UNIQUE,      -- casefold(name): names are unique ignoring case
    password_hash TEXT,
    rating        REAL    NOT NULL,
    rd            REAL    NOT NULL,
    volatility    REAL    NOT NULL,
    games_count   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE games (
    id           INTEGER PRIMARY KEY,
    black_id     INTEGER REFERENCES users (id),
    white_id     INTEGER REFERENCES users (id),
    black_bot    TEXT,
    white_bot    TEXT,
    width        INTEGER NOT NULL CHECK (width BETWEEN 1 AND 52),
    height       INTEGER NOT NULL CHECK (height BETWEEN 1 AND 52),
    komi         REAL    NOT NULL,
    rules        TEXT    NOT NULL,
    handicap     INTEGER NOT NULL DEFAULT 0 CHECK (handicap >= 0),
    time_control TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('open', 'playing', 'scoring', 'finished', 'aborted')),
    result       TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    last_seq     INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    deadline     INTEGER
) STRICT;

-- active games of a user (one index per colour; the queries repeat the WHERE text)
CREATE INDEX games_black_active ON games (black_id)
    WHERE status IN ('open', 'playing', 'scoring');
CREATE INDEX games_white_active ON games (white_id)
    WHERE status IN ('open', 'playing', 'scoring');
-- recent finished games
CREATE INDEX games_recent_finished ON games (finished_at DESC, id DESC)
    WHERE status = 'finished';
-- games whose clock runs out
CREATE INDEX games_deadline ON games (deadline) WHERE deadline IS NOT NULL;

-- the append-only event log; (game_id, seq) is the per-game lock
CREATE TABLE game_events (
    game_id    INTEGER NOT NULL REFERENCES games (id),
    seq        INTEGER NOT NULL CHECK (seq > 0),
    kind       TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (game_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE chat_messages (
    id         INTEGER PRIMARY KEY,
    room       TEXT    NOT NULL,
    user_id    INTEGER REFERENCES users (id),
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX chat_messages_room ON chat_messages (room, id);

CREATE TABLE challenges (
    id            INTEGER PRIMARY KEY,
    challenger_id INTEGER NOT NULL REFERENCES users (id),
    target_id     INTEGER REFERENCES users (id),
    params        TEXT    NOT NULL,
    status        TEXT    NOT NULL
                  CHECK (status IN ('open', 'accepted', 'declined', 'cancelled', 'expired')),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    accepted_by   INTEGER REFERENCES users (id),
    game_id       INTEGER REFERENCES games (id)
) STRICT;

-- open challenges (the lobby) and direct challenges waiting for a user
CREATE INDEX challenges_open ON challenges (id) WHERE status = 'open';
CREATE INDEX challenges_open_target ON challenges (target_id) WHERE status = 'open';

CREATE TABLE refresh_tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
