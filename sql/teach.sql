-- Teaching: verified examples, definitions, private columns and feedback (src/teach/). The tables
-- are granted to no one: the functions read and write them on the caller's behalf, and the views
-- show each role what it may see. Everything here survives pg_dump.

-- Questions with the SQL that answers them. `reads` is what PostgreSQL's analysis of the SQL said
-- it reads ([{"schema", "table", "columns"}]): an example is used for a caller only when the caller
-- may read all of it.
CREATE TABLE sqlchat.example (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question      text NOT NULL,
    sql           text NOT NULL,
    note          text,
    reads         jsonb NOT NULL,
    taught_by     name NOT NULL,
    taught_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    uses          bigint NOT NULL DEFAULT 0,
    last_used_at  timestamptz
);
COMMENT ON TABLE sqlchat.example IS 'sqlchat verified examples: questions with the SQL that answers them';

-- Business definitions of terms; a NULL term is a standing instruction sent with every question.
CREATE TABLE sqlchat.definition (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    term        text,
    meaning     text NOT NULL,
    defined_by  name NOT NULL,
    defined_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE sqlchat.definition IS 'sqlchat definitions of business terms and standing instructions';

-- Columns whose values never reach the gateway. A column is found by its name and by its number,
-- so it stays private when renamed, and after a restore whatever the numbers became.
CREATE TABLE sqlchat.private_column (
    table_oid    regclass NOT NULL,
    column_name  name NOT NULL,
    attnum       smallint NOT NULL,
    marked_by    name NOT NULL,
    marked_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (table_oid, column_name)
);
COMMENT ON TABLE sqlchat.private_column IS 'sqlchat private columns: their values are never sent to the LLM gateway';

-- Feedback on a turn, by the role whose turn it is; a teacher may promote it to an example.
CREATE TABLE sqlchat.feedback (
    turn_id     bigint PRIMARY KEY REFERENCES sqlchat.turn (id) ON DELETE CASCADE,
    helpful     boolean NOT NULL,
    correction  text,
    given_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    example_id  bigint REFERENCES sqlchat.example (id) ON DELETE SET NULL
);
COMMENT ON TABLE sqlchat.feedback IS 'sqlchat feedback on answered turns, for teachers to review';

REVOKE ALL ON sqlchat.example, sqlchat.definition, sqlchat.private_column, sqlchat.feedback FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sqlchat.example', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.example_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.definition', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.definition_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.private_column', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.feedback', '');

CREATE VIEW sqlchat.examples AS SELECT * FROM sqlchat.taught_examples();
COMMENT ON VIEW sqlchat.examples IS 'sqlchat examples the caller may use (every example for superusers and the extension owner)';
GRANT SELECT ON sqlchat.examples TO PUBLIC;

CREATE VIEW sqlchat.definitions AS SELECT * FROM sqlchat.taught_definitions();
COMMENT ON VIEW sqlchat.definitions IS 'sqlchat definitions of terms and standing instructions';
GRANT SELECT ON sqlchat.definitions TO PUBLIC;

CREATE VIEW sqlchat.private_columns AS SELECT * FROM sqlchat.private_column_list();
COMMENT ON VIEW sqlchat.private_columns IS 'sqlchat private columns of the tables the caller may read';
GRANT SELECT ON sqlchat.private_columns TO PUBLIC;

CREATE VIEW sqlchat.feedback_queue AS SELECT * FROM sqlchat.feedback_list();
COMMENT ON VIEW sqlchat.feedback_queue IS 'sqlchat feedback on answered turns: all of it for teachers, their own for others';
GRANT SELECT ON sqlchat.feedback_queue TO PUBLIC;
