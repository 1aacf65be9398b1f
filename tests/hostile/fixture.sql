-- Objects the hostile corpus aims at: tables with data, sequences, functions that write while
-- claiming to be STABLE or IMMUTABLE, and views, operators, casts, domains, defaults and aggregates
-- that hide such functions.
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 250), (3, 'carol', 75);
CREATE TABLE audit (id serial PRIMARY KEY, note text);
INSERT INTO audit(note) VALUES ('seed');
CREATE SEQUENCE counter_seq;
SELECT nextval('counter_seq');
CREATE TABLE bumped_default (id bigint DEFAULT nextval('counter_seq'), at timestamptz DEFAULT clock_timestamp());
CREATE MATERIALIZED VIEW balances_mv AS SELECT owner, balance FROM accounts;

CREATE FUNCTION stable_writer() RETURNS int LANGUAGE plpgsql STABLE AS
$$ BEGIN INSERT INTO audit(note) VALUES ('stable_writer'); RETURN 1; END $$;
CREATE FUNCTION immutable_bumper() RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT nextval('counter_seq') $$;
CREATE FUNCTION notify_fn(text) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT pg_notify('hostile', $1) IS NULL $$;
CREATE FUNCTION lock_fn() RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT pg_try_advisory_lock(4243) $$;
CREATE FUNCTION rows_writer() RETURNS SETOF int LANGUAGE plpgsql STABLE AS
$$ BEGIN DELETE FROM accounts; RETURN NEXT 1; END $$;
CREATE PROCEDURE bump_proc() LANGUAGE sql AS $$ SELECT nextval('counter_seq') $$;

CREATE VIEW v_bump AS SELECT id, immutable_bumper() AS n FROM accounts;
CREATE VIEW v_lock AS SELECT pg_try_advisory_lock(4244) AS l;
CREATE VIEW v_notify AS SELECT pg_notify('hostile', 'view') IS NULL AS n;
CREATE VIEW v_writer AS SELECT owner FROM accounts WHERE stable_writer() > 0;

CREATE FUNCTION bump_op(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT ($1 + $2 + nextval('counter_seq') * 0)::int $$;
CREATE OPERATOR ~+~ (LEFTARG = int, RIGHTARG = int, FUNCTION = bump_op);

CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE FUNCTION int_to_mood(int) RETURNS mood LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN nextval('counter_seq') > 0 THEN 'happy'::mood END $$;
CREATE CAST (int AS mood) WITH FUNCTION int_to_mood(int);
CREATE FUNCTION bump_check(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT nextval('counter_seq') > 0 $$;
CREATE DOMAIN bumped_int AS int CHECK (bump_check(VALUE));

CREATE FUNCTION bump_sfunc(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS
$$ SELECT (coalesce($1, 0) + $2 + nextval('counter_seq') * 0)::int $$;
CREATE AGGREGATE bump_sum(int) (SFUNC = bump_sfunc, STYPE = int);
