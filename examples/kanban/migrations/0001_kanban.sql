-- The kanban app's tables, the publication of the tables its views watch, and a demo board.
--
-- Replica identity stays DEFAULT on every table: an update or delete carries only the primary
-- key of the old row, and the framework routes deletes and moves (a card to another board,
-- another column, another assignee) by the row's id.

CREATE TABLE boards (
    id bigserial PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE columns (
    id bigserial PRIMARY KEY,
    board_id bigint NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    name text NOT NULL,
    position integer NOT NULL DEFAULT 0
);

CREATE INDEX columns_board_id ON columns (board_id);

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE cards (
    id bigserial PRIMARY KEY,
    board_id bigint NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    column_id bigint NOT NULL REFERENCES columns (id) ON DELETE CASCADE,
    position integer NOT NULL DEFAULT 0,
    title text NOT NULL,
    assignee_id bigint REFERENCES users (id) ON DELETE SET NULL
);

CREATE INDEX cards_board_id ON cards (board_id);
CREATE INDEX cards_column_id ON cards (column_id);
CREATE INDEX cards_assignee_id ON cards (assignee_id);

-- The replication slot is created by the listener at start; the publication names exactly the
-- watched tables.
CREATE PUBLICATION live_publication FOR TABLE boards, columns, users, cards;

-- A demo board, so the app is usable at once.
INSERT INTO boards (id, name) VALUES (1, 'Demo board');
INSERT INTO columns (id, board_id, name, position) VALUES
    (1, 1, 'To do', 0), (2, 1, 'Doing', 1), (3, 1, 'Done', 2);
INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Linus');
INSERT INTO cards (id, board_id, column_id, position, title, assignee_id) VALUES
    (1, 1, 1, 0, 'Sketch the board page', 1),
    (2, 1, 1, 1, 'Write the migration', 2),
    (3, 1, 2, 0, 'Watch the cards by board', 1),
    (4, 1, 3, 0, 'Set up Postgres', 3),
    (5, 1, 1, 2, 'Invite the team', NULL);

SELECT setval('boards_id_seq', (SELECT max(id) FROM boards));
SELECT setval('columns_id_seq', (SELECT max(id) FROM columns));
SELECT setval('users_id_seq', (SELECT max(id) FROM users));
SELECT setval('cards_id_seq', (SELECT max(id) FROM cards));
