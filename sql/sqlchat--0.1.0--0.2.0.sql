-- sqlchat 0.1.0 to 0.2.0. Never edit a step after its release: later changes get a step of their own.
-- Whatever this changes must leave the extension exactly as a fresh install of 0.2.0 creates it
-- (tests/e2e/test_upgrade.py compares the two).
\echo Use "ALTER EXTENSION sqlchat UPDATE TO '0.2.0'" to load this file. \quit

-- ask_full's result: the query's columns in order, and the fields of taught examples.
ALTER TYPE sqlchat.answer
    ADD ATTRIBUTE columns jsonb,
    ADD ATTRIBUTE verified boolean,
    ADD ATTRIBUTE example_id bigint;

-- Memory and cache rows belong to a role by oid and name together. A row gets the oid of the role
-- that has its name at the upgrade; rows of roles dropped before it are removed, since no role
-- could ever read them again.
ALTER TABLE sqlchat.turn ADD COLUMN role_oid oid;
ALTER TABLE sqlchat.session_summary ADD COLUMN role_oid oid;
ALTER TABLE sqlchat.cache ADD COLUMN role_oid oid;
UPDATE sqlchat.turn t SET role_oid = r.oid
    FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) t.role_name;
UPDATE sqlchat.session_summary s SET role_oid = r.oid
    FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) s.role_name;
UPDATE sqlchat.cache c SET role_oid = r.oid
    FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) c.role_name;
DO $$
DECLARE
    turns bigint;
    summaries bigint;
    cached bigint;
BEGIN
    DELETE FROM sqlchat.turn WHERE role_oid IS NULL;
    GET DIAGNOSTICS turns = ROW_COUNT;
    DELETE FROM sqlchat.session_summary WHERE role_oid IS NULL;
    GET DIAGNOSTICS summaries = ROW_COUNT;
    DELETE FROM sqlchat.cache WHERE role_oid IS NULL;
    GET DIAGNOSTICS cached = ROW_COUNT;
    -- A WARNING: extension scripts run with client_min_messages at WARNING at least.
    IF turns OPERATOR(pg_catalog.<>) 0 OR summaries OPERATOR(pg_catalog.<>) 0 OR cached OPERATOR(pg_catalog.<>) 0 THEN
        RAISE WARNING 'sqlchat: removed the rows of roles dropped before the upgrade: % turns, % summaries, % cached statements',
            turns, summaries, cached;
    END IF;
END
$$;
ALTER TABLE sqlchat.turn ALTER COLUMN role_oid SET NOT NULL;
ALTER TABLE sqlchat.session_summary ALTER COLUMN role_oid SET NOT NULL;
ALTER TABLE sqlchat.cache ALTER COLUMN role_oid SET NOT NULL;
DROP INDEX sqlchat.turn_session_idx;
CREATE INDEX turn_session_idx ON sqlchat.turn (role_oid, session_id, id);
ALTER TABLE sqlchat.session_summary
    DROP CONSTRAINT session_summary_pkey,
    ADD PRIMARY KEY (role_oid, role_name, session_id);

-- New function.
CREATE FUNCTION sqlchat.check_setup() RETURNS TABLE (
    severity text,
    problem text,
    fix text
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_setup_wrapper';
