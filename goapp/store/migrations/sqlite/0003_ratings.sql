-- Ratings by pool (goapp.rating.service): 'overall' and one pool per board size 9, 13, 19.
-- rating_history is the once-only record of rated games: its primary key makes a rating
-- update for a game apply exactly once (Store.apply_rating_update), across retries and
-- instances. Keep in step with ../postgres/0003_ratings.sql.

CREATE TABLE ratings (
    user_id    INTEGER NOT NULL REFERENCES users (id),
    pool       TEXT    NOT NULL CHECK (pool IN ('overall', '9', '13', '19')),
    rating     REAL    NOT NULL,
    rd         REAL    NOT NULL,
    volatility REAL    NOT NULL,
    games      INTEGER NOT NULL DEFAULT 0 CHECK (games >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, pool)
) STRICT, WITHOUT ROWID;

-- the leaderboard of a pool
CREATE INDEX ratings_pool ON ratings (pool, rating DESC);

CREATE TABLE rating_history (
    game_id       INTEGER NOT NULL REFERENCES games (id),
    user_id       INTEGER NOT NULL REFERENCES users (id),
    pool          TEXT    NOT NULL CHECK (pool IN ('overall', '9', '13', '19')),
    rating_before REAL    NOT NULL,
    rating_after  REAL    NOT NULL,
    rd_after      REAL    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (game_id, user_id, pool)
) STRICT, WITHOUT ROWID;

-- a user's rating graph in a pool
CREATE INDEX rating_history_user ON rating_history (user_id, pool, created_at);

-- whether a game moves ratings (games against bots never do, whatever this says)
ALTER TABLE games ADD COLUMN rated INTEGER NOT NULL DEFAULT 1 CHECK (rated IN (0, 1));
