-- Migration number: 0002 2026-12-05T07:00:00.000Z
-- Indexes for the rooms service's queries.

-- A user's rooms (GET /api/rooms) and membership checks by user.
CREATE INDEX room_members_user ON room_members (user_id, room_id);

-- Members of a room in joining order (member lists and their keyset paging,
-- the longest-standing member).
CREATE INDEX room_members_room_joined ON room_members (room_id, joined_at, user_id);

-- Public rooms to discover, by name without regard to case, then id (keyset paging).
CREATE INDEX chat_rooms_public_name ON chat_rooms (name COLLATE NOCASE, id) WHERE is_private = 0;

-- A room's newest message (last activity) and deleting a room's messages.
CREATE INDEX messages_room_id ON messages (room_id, id);

-- Invitations by username.
CREATE INDEX users_username ON users (username);

-- Memberships written with the schema's default (CURRENT_TIMESTAMP,
-- "YYYY-MM-DD HH:MM:SS") take the form the rooms service writes
-- ("YYYY-MM-DDTHH:MM:SS.sssZ"), so that ordering by joined_at is ordering by
-- time.
UPDATE room_members SET joined_at = strftime('%Y-%m-%dT%H:%M:%fZ', joined_at)
  WHERE joined_at LIKE '____-__-__ __:__:__';
