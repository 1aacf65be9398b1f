-- Objects the functions depend on; created before them.
-- A fresh install must equal an upgraded one (tests/e2e/test_upgrade.py compares them): a column or
-- attribute added in a release goes at the end here, where ALTER TABLE/TYPE ... ADD puts it, and
-- every change gets its step in sql/sqlchat--<previous>--<next>.sql.

-- CREATE EXTENSION reuses a schema named sqlchat that already exists; one owned by another role
-- would let that role drop or shadow the extension's objects.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_namespace n
               WHERE n.nspname OPERATOR(pg_catalog.=) 'sqlchat'
                 AND n.nspowner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                        WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog.current_user())) THEN
        RAISE EXCEPTION 'schema sqlchat already exists and belongs to another role'
            USING ERRCODE = '42P06',
                  HINT = 'Drop or rename that schema, or create the extension as its owner.';
    END IF;
END
$$;

COMMENT ON SCHEMA sqlchat IS 'sqlchat: ask your database questions in plain language';
-- Everyone may call the functions (they run with the caller's rights); the tables stay private.
GRANT USAGE ON SCHEMA sqlchat TO PUBLIC;

CREATE TYPE sqlchat.answer AS (
    answer      text,             -- the answer in words
    sql         text,             -- the statement that ran (NULL when nothing ran)
    rows        jsonb,            -- result rows as an array of objects (NULL when nothing ran)
    suggestions text[],           -- follow-up questions
    tables      text[],           -- tables given to the model (or read by the offline engine)
    attempts    int,              -- statements tried (1 + repairs)
    llm_calls   int,              -- chat requests made to the gateway
    from_cache  bool,             -- the SQL came from the cache
    elapsed_ms  double precision, -- wall time of the call
    engine      text,             -- 'llm' or 'offline'
    truncated   bool,             -- more rows existed than sqlchat.max_rows
    chart       jsonb,            -- a suggested chart for the rows (see sqlchat.suggest_chart)
    columns     jsonb,            -- [{"name", "type"}] in the query's column order (NULL when nothing ran)
    verified    boolean,          -- the SQL is a taught example's, reused as is
    example_id  bigint            -- that example (NULL otherwise)
);
COMMENT ON TYPE sqlchat.answer IS 'The full result of sqlchat.ask_full';

-- Conversation memory: one row per answered question, per role and session. Not granted to anyone:
-- the functions read and write it on the caller's behalf and return only the caller's rows.
-- Rows belong to a role by oid and name together: a role created later with a dropped role's name
-- (or, restored into another cluster, with its oid) never sees them.
CREATE TABLE sqlchat.turn (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role_name   name NOT NULL,
    session_id  text NOT NULL,
    question    text NOT NULL,
    sql         text,
    answer      text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    role_oid    oid NOT NULL
);
CREATE INDEX turn_session_idx ON sqlchat.turn (role_oid, session_id, id);
COMMENT ON TABLE sqlchat.turn IS 'sqlchat conversation memory: questions, SQL and answers per role and session';

-- Summaries of the turns older than sqlchat.max_history, stored so they are not recomputed.
CREATE TABLE sqlchat.session_summary (
    role_name    name NOT NULL,
    session_id   text NOT NULL,
    summary      text NOT NULL,
    through_turn bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    role_oid     oid NOT NULL,
    PRIMARY KEY (role_oid, role_name, session_id)
);
COMMENT ON TABLE sqlchat.session_summary IS 'sqlchat: summaries of older conversation turns';

-- Generated SQL cached per role and exact prompt context; never result rows.
CREATE TABLE sqlchat.cache (
    key         text PRIMARY KEY,
    role_name   name NOT NULL,
    model       text NOT NULL,
    sql         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at  timestamptz NOT NULL,
    role_oid    oid NOT NULL
);
CREATE INDEX cache_expires_idx ON sqlchat.cache (expires_at);
COMMENT ON TABLE sqlchat.cache IS 'sqlchat LLM cache: generated SQL per role and prompt context (re-run under the caller''s rights on a hit)';

REVOKE ALL ON sqlchat.turn, sqlchat.session_summary, sqlchat.cache FROM PUBLIC;

-- Memory survives pg_dump; the cache is rebuilt on demand.
SELECT pg_catalog.pg_extension_config_dump('sqlchat.turn', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.session_summary', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.turn_id_seq', '');
