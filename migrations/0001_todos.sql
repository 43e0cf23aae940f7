-- The todo app's tables, and the publication of the tables its views watch.
--
-- Replica identity FULL: updates and deletes carry the whole old row, so the listener knows a
-- row's old list (its subscription key) without asking. (The framework also routes deletes and
-- key moves of default-identity tables, by primary key.)

CREATE TABLE lists (
    id bigserial PRIMARY KEY,
    name text NOT NULL DEFAULT 'todos',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE todos (
    id bigserial PRIMARY KEY,
    list_id bigint NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    title text NOT NULL,
    completed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX todos_list_id ON todos (list_id);

ALTER TABLE todos REPLICA IDENTITY FULL;

-- The replication slot is created by the listener at start (its name is configurable and slot
-- names are per server, not per database); the publication names exactly the watched tables.
CREATE PUBLICATION live_publication FOR TABLE todos;
