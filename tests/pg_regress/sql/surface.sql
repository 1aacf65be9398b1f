-- The SQL surface as users see it: functions, settings, errors. No gateway is needed here.
CREATE EXTENSION sqlchat;
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, p.provolatile, p.proparallel, p.prosecdef
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'sqlchat' ORDER BY 1, 2;
-- The tables are granted to no one but their owner, the views to PUBLIC (the owner's own
-- privileges vary by version); sqlchat.log to PUBLIC for SELECT, under row-level security.
SELECT c.relname, c.relkind,
       (SELECT count(*) FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner) AS granted_to_others
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'sqlchat' AND c.relkind IN ('r', 'v') ORDER BY 1;

-- Every setting with its default.
SELECT name, boot_val AS default, unit, context FROM pg_settings WHERE name LIKE 'sqlchat.%' ORDER BY name;

CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2));
COMMENT ON TABLE items IS 'Things we sell';
INSERT INTO items VALUES (1, 'pen', 1.50), (2, 'book', 12.00), (3, 'lamp', 30.00);

\set VERBOSITY default
-- Bad input: clear errors with SQLSTATE and hint.
SELECT sqlchat.ask(NULL);
SELECT sqlchat.ask('   ');
SELECT sqlchat.ask(repeat('x', 9000));
SET sqlchat.api_base = '';
SET sqlchat.engine = 'llm';
SELECT sqlchat.ask('how many items are there?');
SELECT sqlchat.generate_sql('how many items are there?');
SET sqlchat.api_base = 'http://203.0.113.1/v1';
SELECT sqlchat.ask('how many items are there?');
SET sqlchat.api_base = 'ftp://localhost/v1';
SELECT sqlchat.ask('how many items are there?');
RESET sqlchat.api_base;
RESET sqlchat.engine;

-- Settings are checked.
SET sqlchat.max_rows = 0;
SET sqlchat.engine = 'magic';
SET sqlchat.send_rows = 'all';

-- Secrets and gateway settings are not for ordinary roles.
CREATE ROLE sqlchat_plain;
GRANT SELECT ON items TO sqlchat_plain;
SET ROLE sqlchat_plain;
-- PostgreSQL's own message differs between versions: the SQLSTATE only.
\set VERBOSITY sqlstate
SHOW sqlchat.api_key;
SELECT current_setting('sqlchat.api_key');
\set VERBOSITY default
SELECT count(*) FROM pg_settings WHERE name IN ('sqlchat.api_key', 'sqlchat.auth_header');
SET sqlchat.api_base = 'http://127.0.0.1:1/v1';
SET sqlchat.api_key = 'stolen';
SET sqlchat.send_rows = 'sample';
SELECT sqlchat.clear_cache();
SET sqlchat.engine = 'offline';
SELECT sqlchat.ask('what is the meaning of life?') IS NOT NULL AS answered;
RESET sqlchat.engine;
SELECT * FROM sqlchat.turn;
SELECT * FROM sqlchat.cache;
RESET ROLE;
ALTER ROLE sqlchat_plain SET sqlchat.api_key = 'x';
ALTER DATABASE regression SET sqlchat.api_key = 'x';

-- Memory functions on an empty session.
SELECT * FROM sqlchat.history('nothing-here');
SELECT sqlchat.forget('nothing-here');

-- Charts need no gateway.
SELECT jsonb_build_object('type', c->'chart_type', 'x', c->'x', 'y', c->'y')
FROM sqlchat.suggest_chart('revenue per month', 'SELECT month, revenue FROM t',
  '[{"month": "2024-01-01", "revenue": 10}, {"month": "2024-02-01", "revenue": 12}, {"month": "2024-03-01", "revenue": 9}]') c;
SELECT sqlchat.suggest_chart('how many', 'SELECT count(*)', '[{"count": 42}]')->>'chart_type' AS kpi;
SELECT sqlchat.suggest_chart('nothing', 'SELECT 1 WHERE false', '[]')->>'chart_type' AS empty;
SELECT sqlchat.suggest_chart('bad', 'SELECT 1', '{"not": "an array"}');
SELECT sqlchat.suggest_chart('bad', 'SELECT 1', '[1, 2, 3]');

-- Background asks: bad input, jobs nobody has, where jobs cannot be queued (none is queued here).
SELECT sqlchat.submit(NULL);
SELECT sqlchat.submit('   ');
SELECT sqlchat.result(-1);
SELECT sqlchat.cancel_job(-1);
SELECT sqlchat.result(NULL) IS NULL AS no_job;
BEGIN READ ONLY;
SELECT sqlchat.submit('how many items are there?');
ROLLBACK;
SET ROLE sqlchat_plain;
SELECT count(*) FROM sqlchat.jobs;
SELECT * FROM sqlchat.job;
RESET ROLE;

-- The interaction log: each role reads its own rows; only the worker writes.
SELECT c.relrowsecurity, p.polname, p.polcmd FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid
WHERE c.oid = 'sqlchat.log'::regclass;
SET ROLE sqlchat_plain;
SELECT count(*) FROM sqlchat.log WHERE role_name <> current_user;
DELETE FROM sqlchat.log;
SET sqlchat.log_asks = off;
SET sqlchat.auditor_role = 'sqlchat_plain';
RESET ROLE;

DROP TABLE items;
DROP ROLE sqlchat_plain;
DROP EXTENSION sqlchat;
