-- The interaction log: one row per ask (ask, ask_full, generate_sql, background jobs), answered or
-- not, written by a background worker outside the caller's transaction (src/ops/log/).

-- Every role may SELECT; the row-level security policy shows a role its own rows (by oid and name
-- together, as memory does), and every row to superusers and members of sqlchat.auditor_role.
-- Only the worker writes, as the table's owner. Rows are kept sqlchat.log_retention.
CREATE TABLE sqlchat.log (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asked_at          timestamptz NOT NULL,   -- when the ask began
    role_oid          oid NOT NULL,           -- the role that asked (current_user)
    role_name         name NOT NULL,
    session_id        text,
    question          text,                   -- as sqlchat.log_questions says: the text, NULL, or its hash
    sql               text,                   -- the statement that ran (or was generated)
    engine            text,                   -- llm, offline or verified; NULL when the ask failed
    verified          boolean NOT NULL,
    from_cache        boolean NOT NULL,
    attempts          int NOT NULL,
    llm_calls         int NOT NULL,           -- requests sent to the gateway, retries included
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    tokens_estimated  boolean NOT NULL,       -- some replies had no usage: their tokens are estimated
    gateway_ms        double precision NOT NULL,
    sql_ms            double precision NOT NULL,
    total_ms          double precision NOT NULL,
    steps             jsonb,                  -- [{"step", "ms"}]: catalog, llm:<purpose>, sql...
    sqlstate          text,                   -- the ERROR that ended the ask
    message           text,
    backend_pid       int
);
CREATE INDEX log_asked_at_idx ON sqlchat.log (asked_at);
CREATE INDEX log_role_idx ON sqlchat.log (role_oid, id);
COMMENT ON TABLE sqlchat.log IS 'sqlchat interaction log: one row per ask, kept through ROLLBACK and errors (a role reads its own rows; superusers and sqlchat.auditor_role all)';
REVOKE ALL ON sqlchat.log FROM PUBLIC;
GRANT SELECT ON sqlchat.log TO PUBLIC;
ALTER TABLE sqlchat.log ENABLE ROW LEVEL SECURITY;
CREATE POLICY log_reader ON sqlchat.log FOR SELECT TO PUBLIC
    USING ((SELECT sqlchat.log_reads_all())
           OR (role_oid OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
               AND role_name OPERATOR(pg_catalog.=) CURRENT_USER));
SELECT pg_catalog.pg_extension_config_dump('sqlchat.log', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.log_id_seq', '');
