-- 0002: what the forum log engine needs beyond 0001.

-- Invitations addressed to this node's members (`forum.invite` from a hub, or sequenced
-- by this node as hub). The candidate's node learns of a forum only through these, so
-- they are also what lets it accept the forum's entries before it holds any state.
CREATE TABLE forum_invites (
    forum       TEXT NOT NULL,
    candidate   TEXT NOT NULL,        -- @handle:this-node
    hub         TEXT NOT NULL,        -- the hub that signed the invite entry
    seq         INTEGER NOT NULL,
    event_id    BLOB NOT NULL,        -- of the member.invite event
    entry       BLOB NOT NULL,        -- the signed entry, exactly as received
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (forum, candidate)
);
CREATE INDEX forum_invites_candidate ON forum_invites (candidate);

-- Looking up what a forum holds for one event, and an evidence list per forum.
CREATE INDEX evidence_forum ON evidence (forum, id);
