-- Sessions (goapp.server.api.accounts, docs/api.md "Sessions"). Keep in step with
-- ../postgres/0007_sessions.sql.
--
-- access_revocations: access tokens are stateless JWTs, so a logout refuses a user's
-- tokens issued before not_before_ms (epoch milliseconds). Kept here so that a restart
-- does not bring a logged-out token back to life; a row is useless (and pruned) once every
-- token it refuses has expired anyway (access_token_ttl after not_before_ms).
CREATE TABLE access_revocations (
    user_id       INTEGER NOT NULL PRIMARY KEY,
    not_before_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- replaced_by: the hash of the token that a rotation issued in this token's place. A
-- revoked token WITH a successor was rotated away: presenting it again is reuse (theft).
-- A revoked token WITHOUT one was ended by a logout (or a password change, or a detected
-- theft): presenting it is merely refused. Rows revoked before this migration have no
-- successor recorded and count as ended.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;
