-- Migration number: 0003 2026-12-05T09:00:00.000Z
-- The messages service's columns: edits, soft deletes and idempotent sends.
-- The (room_id, id) index that history pages use exists since 0002
-- (messages_room_id).

-- When the author last edited the message; NULL when never.
ALTER TABLE messages ADD COLUMN edited_at TEXT;

-- A deleted message keeps its row as a tombstone (content emptied) so that
-- history stays consistent: when, and by whom (the author, or an admin or
-- moderator of the room).
ALTER TABLE messages ADD COLUMN deleted_at TEXT;
ALTER TABLE messages ADD COLUMN deleted_by TEXT;

-- The key a client chose for a send, so that a retried send returns the first
-- message instead of storing a second one. Unique per user.
ALTER TABLE messages ADD COLUMN client_ref TEXT;
CREATE UNIQUE INDEX messages_user_client_ref ON messages (user_id, client_ref)
  WHERE client_ref IS NOT NULL;
