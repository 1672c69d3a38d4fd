-- 0001: everything federation and the client API need to start with.
-- Times are integer milliseconds since the Unix epoch (as on the wire).
-- Bytes columns hold canonical msgpack exactly as received or signed: signatures cover
-- those bytes, so they are stored, never re-encoded.

-- Small facts about this node (current descriptor, counters). One row per key.
CREATE TABLE node_state (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- Our own key rotation statements, newest last; peers learn of a rotation from these.
CREATE TABLE rotations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    old_kid    TEXT NOT NULL,
    new_kid    TEXT NOT NULL,
    statement  BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);

-- Other nodes. A peer is named by its host; traffic is accepted only while approved.
CREATE TABLE peers (
    name            TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'approved', 'blocked', 'key_changed')),
    descriptor      BLOB,            -- last verified descriptor (canonical bytes)
    offered         BLOB,            -- descriptor with unpinned keys awaiting the operator
    added_ms        INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    last_seen_ms    INTEGER
);

-- Keys of peers. pinned = approved by the operator or proven by a rotation statement;
-- expired_ms NULL = current. Signatures are checked against the key valid at `ts`.
CREATE TABLE peer_keys (
    peer       TEXT NOT NULL REFERENCES peers(name) ON DELETE CASCADE,
    kid        TEXT NOT NULL,
    key        BLOB NOT NULL,
    pinned     INTEGER NOT NULL DEFAULT 0,
    expired_ms INTEGER,
    PRIMARY KEY (peer, kid)
);

-- Envelope ids seen; kept longer than the skew window so a replay is always caught.
CREATE TABLE replay_cache (
    id         BLOB PRIMARY KEY,
    peer       TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replay_cache_expires ON replay_cache (expires_ms);

-- Forums this node takes part in (as hub or replica). `state` is the folded node-enforced
-- state (canonical bytes), cached so it need not be recomputed from the whole log.
CREATE TABLE forums (
    id         TEXT PRIMARY KEY,
    hub        TEXT NOT NULL,
    state      BLOB,
    head_seq   INTEGER NOT NULL DEFAULT 0,
    head_hash  BLOB,
    frozen     INTEGER NOT NULL DEFAULT 0,
    proof      BLOB,                 -- equivocation proof that froze the forum
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- The forum log: hub-signed entries, hash-chained.
CREATE TABLE entries (
    forum       TEXT NOT NULL REFERENCES forums(id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    hash        BLOB NOT NULL,
    event_id    BLOB NOT NULL,
    entry       BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (forum, seq),
    UNIQUE (forum, event_id)
);

-- Signed events waiting for the hub to sequence them (ours to forward, or ours to order).
CREATE TABLE submissions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    forum       TEXT NOT NULL,
    event_id    BLOB NOT NULL,
    event       BLOB NOT NULL,
    origin      TEXT NOT NULL,        -- node that submitted it (this node's name if local)
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sequenced', 'refused')),
    reason      TEXT,                 -- error code when refused
    received_ms INTEGER NOT NULL,
    UNIQUE (forum, event_id)
);
CREATE INDEX submissions_pending ON submissions (state, forum, id);

-- Hub-signed heads, and the cosignatures nodes exchanged for them.
CREATE TABLE heads (
    forum TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    head  BLOB NOT NULL,
    PRIMARY KEY (forum, seq)
);
CREATE TABLE cosignatures (
    forum       TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    node        TEXT NOT NULL,
    hash        BLOB NOT NULL,
    cosig       BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (forum, seq, node)
);

-- What we refused and why: evidence of a faulty peer or hub, for operators.
CREATE TABLE evidence (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    peer        TEXT,
    forum       TEXT,
    kind        TEXT NOT NULL,        -- 'entry', 'envelope', 'head', ...
    code        TEXT NOT NULL,        -- protocol error code
    object      BLOB NOT NULL,
    received_ms INTEGER NOT NULL
);

-- Durable outbox: one row per envelope to deliver, or a catch-up marker meaning
-- "send `forum` entries from `from_seq` on" (expanded at delivery time, so an outage
-- costs one row, not one row per missed entry).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    destination     TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('envelope', 'catchup')),
    envelope        BLOB,
    forum           TEXT,
    from_seq        INTEGER,
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    CHECK ((kind = 'envelope' AND envelope IS NOT NULL)
        OR (kind = 'catchup' AND forum IS NOT NULL AND from_seq IS NOT NULL))
);
CREATE INDEX outbox_due ON outbox (state, destination, next_attempt_ms);

-- Per-peer delivery health: exponential backoff and the circuit breaker.
CREATE TABLE peer_delivery (
    peer            TEXT PRIMARY KEY,
    breaker         TEXT NOT NULL DEFAULT 'closed'
                    CHECK (breaker IN ('closed', 'open', 'half_open')),
    failures        INTEGER NOT NULL DEFAULT 0,
    backoff_ms      INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    updated_ms      INTEGER NOT NULL
);

-- Highest seq of each forum a peer has acknowledged: where catch-up resumes.
CREATE TABLE peer_acks (
    peer      TEXT NOT NULL,
    forum     TEXT NOT NULL,
    acked_seq INTEGER NOT NULL,
    PRIMARY KEY (peer, forum)
);

-- This node's own members (it attests their identity and organization).
CREATE TABLE members (
    id         TEXT PRIMARY KEY,      -- @handle:node
    org        TEXT NOT NULL,
    title      TEXT,
    industry   TEXT,
    status     TEXT NOT NULL DEFAULT 'invited'
               CHECK (status IN ('invited', 'active', 'suspended', 'removed')),
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- Member devices: keys created on the device; only public halves here.
CREATE TABLE devices (
    kid         TEXT PRIMARY KEY,     -- key_id(sign)
    member      TEXT NOT NULL REFERENCES members(id),
    sign_key    BLOB NOT NULL,
    agree_key   BLOB NOT NULL,
    label       TEXT,
    attestation BLOB,                 -- latest attestation signed by this node
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
);
CREATE INDEX devices_member ON devices (member);

-- One-time enrollment codes, stored hashed (a leaked db must not enroll anyone).
CREATE TABLE enrollment_codes (
    code_hash  BLOB PRIMARY KEY,
    member     TEXT NOT NULL REFERENCES members(id),
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms    INTEGER
);

-- Client sessions: the token is stored hashed and bound to the device that proved its key.
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    member       TEXT NOT NULL REFERENCES members(id),
    device       TEXT NOT NULL REFERENCES devices(kid),
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    last_used_ms INTEGER
);
CREATE INDEX sessions_expires ON sessions (expires_ms);
