-- 0003: attachments of detached content (protocol §6.9).
--
-- A detached event (an update) names its ciphertext by hash (`ct_ref`); the ciphertext
-- itself lives here, beside the log, so it can be deleted at `expires` without touching
-- an entry, the chain or a signature. Keyed by event id: a node that forwards its
-- member's event holds the attachment before any entry exists (to re-send it after a hub
-- move), and entries join on (forum, event_id), which 0001 already indexes.
CREATE TABLE attachments (
    id          INTEGER PRIMARY KEY,
    forum       TEXT NOT NULL,
    event_id    BLOB NOT NULL,
    ref         BLOB NOT NULL,        -- SHA-256(data): the event's ct_ref
    expires_ms  INTEGER NOT NULL,     -- the event's `expires`: deleted then, never served after
    data        BLOB NOT NULL,        -- the encoded SealedContent (ciphertext)
    received_ms INTEGER NOT NULL,
    UNIQUE (forum, event_id)
);
-- The retention job's "what expires next" and "what has expired".
CREATE INDEX attachments_expires ON attachments (expires_ms);
