-- AI review of finished games (goapp.engine.review): one row per analysed turn, the JSON
-- result (winrate, score lead, best moves with PV; ownership on the last turn). A cache:
-- it can be dropped and recomputed, so `goapp db copy` does not copy it.
-- Keep in step with ../sqlite/0002_analysis.sql.

CREATE TABLE game_analysis (
    game_id    bigint      NOT NULL REFERENCES games (id),
    turn       integer     NOT NULL CHECK (turn >= 0),
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (game_id, turn)
);

-- active games with a bot, scanned at start-up to resume the bots' turns
CREATE INDEX games_bot_active ON games (id)
    WHERE status IN ('open', 'playing', 'scoring')
      AND (black_bot IS NOT NULL OR white_bot IS NOT NULL);
