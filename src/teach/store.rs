//! The teaching tables, read and written as their owner (`store::as_owner`).

use super::private::PrivateSet;
use super::{require_teacher, require_writable, Loaded};
use crate::error::{raise, OrRaise};
use crate::exec::{self, Limits, Trace};
use crate::store::{as_owner, writable, Caller};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::error::Error;
use sqlchat_core::teach::{self, Definition, Example, Read, Teaching};
use std::cell::RefCell;
use std::ffi::CStr;
use std::sync::Arc;

/// `as_owner`, raising an ERROR when the work failed (teaching must not silently do nothing).
fn owner<R>(what: &str, work: impl FnOnce() -> Result<R, pgrx::spi::Error>) -> R {
    as_owner(what, work)
        .unwrap_or_else(|| raise(Error::Internal { detail: format!("{what} failed (see the WARNING)") }))
}

/// Private columns as loaded: relation oid, attribute number, and (schema, table, column).
type PrivateRows = Vec<(u32, i16, (String, String, String))>;

thread_local! {
    /// What was taught when this backend last looked, with the fingerprint and private columns it
    /// was loaded with: the prepared examples are reused while neither changes.
    static CACHED: RefCell<Option<(String, PrivateRows, Arc<Teaching>)>> = const { RefCell::new(None) };
}

/// Changes whenever an example or definition is added, removed or changed (not when one is used).
const FINGERPRINT_SQL: &str = "SELECT (SELECT count(*) || ':' || coalesce(sum(hashtext(id || question || sql || \
     coalesce(note, '') || reads::text)), 0) FROM sqlchat.example) || '/' || (SELECT count(*) || ':' || \
     coalesce(sum(hashtext(id || coalesce(term, '') || '|' || meaning)), 0) FROM sqlchat.definition)";

/// Everything taught: examples and definitions (within their count limits), read again only when
/// they changed, and the private columns of tables that exist, found by name or number.
pub fn load() -> Loaded {
    let state = as_owner("reading what is taught", || {
        Spi::connect(|c| {
            let fingerprint: String = c.select(FINGERPRINT_SQL, None, &[])?.first().get_one()?.unwrap_or_default();
            let mut private: PrivateRows = Vec::new();
            for row in c.select(PRIVATE_SQL, None, &[])? {
                let relid: pg_sys::Oid = row.get(1)?.unwrap_or(pg_sys::InvalidOid);
                let attnum: i16 = row.get(2)?.unwrap_or_default();
                let names: (String, String, String) =
                    (row.get(3)?.unwrap_or_default(), row.get(4)?.unwrap_or_default(), row.get(5)?.unwrap_or_default());
                private.push((relid.to_u32(), attnum, names));
            }
            Ok((fingerprint, private))
        })
    });
    let Some((fingerprint, private)) = state else {
        return Loaded { teaching: Arc::new(Teaching::default()), private: PrivateSet::default() };
    };
    let cached = CACHED.with(|c| {
        c.borrow().as_ref().filter(|(f, p, _)| *f == fingerprint && *p == private).map(|(_, _, t)| Arc::clone(t))
    });
    let teaching = cached.unwrap_or_else(|| {
        let (examples, definitions) = read_taught().unwrap_or_default();
        let names = private.iter().map(|(_, _, n)| n.clone()).collect();
        let teaching = Arc::new(Teaching::new(examples, definitions, names));
        CACHED.with(|c| *c.borrow_mut() = Some((fingerprint, private.clone(), Arc::clone(&teaching))));
        teaching
    });
    Loaded { private: PrivateSet::new(private.iter().map(|(r, a, _)| (*r, *a))), teaching }
}

fn read_taught() -> Option<(Vec<Example>, Vec<Definition>)> {
    as_owner("reading what is taught", || {
        Spi::connect(|c| {
            let mut examples = Vec::new();
            for row in c.select(
                "SELECT id, question, sql, note, reads::text FROM sqlchat.example ORDER BY id LIMIT $1",
                None,
                &[teach::MAX_EXAMPLES.into()],
            )? {
                let reads: String = row.get(5)?.unwrap_or_default();
                examples.push(Example {
                    id: row.get(1)?.unwrap_or_default(),
                    question: row.get(2)?.unwrap_or_default(),
                    sql: row.get(3)?.unwrap_or_default(),
                    note: row.get(4)?,
                    // Unreadable reads make the example unusable rather than usable by everyone.
                    reads: serde_json::from_str(&reads).unwrap_or_else(|_| vec![unusable()]),
                });
            }
            let mut definitions = Vec::new();
            for row in c.select(
                "SELECT id, term, meaning FROM sqlchat.definition ORDER BY id LIMIT $1",
                None,
                &[teach::MAX_DEFINITIONS.into()],
            )? {
                definitions.push(Definition {
                    id: row.get(1)?.unwrap_or_default(),
                    term: row.get(2)?,
                    meaning: row.get(3)?.unwrap_or_default(),
                });
            }
            Ok((examples, definitions))
        })
    })
}

/// Private columns that exist: by name, and by number (a renamed column stays private).
const PRIVATE_SQL: &str = "SELECT c.oid, a.attnum, n.nspname::text, c.relname::text, a.attname::text \
     FROM sqlchat.private_column p \
     JOIN pg_catalog.pg_class c ON c.oid = p.table_oid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
          AND (a.attname = p.column_name OR a.attnum = p.attnum)";

fn unusable() -> Read {
    Read { schema: String::new(), table: String::new(), columns: vec![String::new()] }
}

/// How many private columns exist (for check_setup).
pub fn private_count() -> i64 {
    as_owner("counting private columns", || {
        Spi::connect(|c| c.select("SELECT count(*) FROM sqlchat.private_column", None, &[])?.first().get_one::<i64>())
    })
    .flatten()
    .unwrap_or(0)
}

/// Counts a use of the example whose SQL answered. A row another transaction holds is skipped:
/// bookkeeping never makes an ask wait.
pub fn record_use(example: Option<i64>) {
    let Some(id) = example.filter(|_| writable()) else { return };
    as_owner("counting the example's use", || {
        Spi::connect_mut(|c| {
            c.update(
                "UPDATE sqlchat.example SET uses = uses + 1, last_used_at = now() WHERE id = ANY(ARRAY( \
                 SELECT id FROM sqlchat.example WHERE id = $1 FOR UPDATE SKIP LOCKED))",
                None,
                &[id.into()],
            )
            .map(|_| ())
        })
    });
}

/// Relation and column names of what a statement reads with the caller's privileges (a
/// whole-row reference reads every column).
fn reads_by_name(trace: &Trace) -> Vec<Read> {
    let mut out: Vec<(pg_sys::Oid, Read)> = Vec::new();
    for r in trace.reads.iter().filter(|r| r.as_caller) {
        let columns: Vec<String> = unsafe {
            if r.columns.contains(&0) {
                let natts = relnatts(r.relid);
                (1..=natts).filter_map(|a| attname(r.relid, a)).collect()
            } else {
                r.columns.iter().filter(|&&a| a > 0).filter_map(|&a| attname(r.relid, a)).collect()
            }
        };
        match out.iter_mut().find(|(relid, _)| *relid == r.relid) {
            Some((_, read)) => {
                for c in columns {
                    if !read.columns.contains(&c) {
                        read.columns.push(c);
                    }
                }
            }
            None => {
                let (schema, table) = unsafe {
                    (
                        crate::exec::trust::cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(r.relid))),
                        crate::exec::trust::cstr(pg_sys::get_rel_name(r.relid)),
                    )
                };
                out.push((r.relid, Read { schema, table, columns }));
            }
        }
    }
    out.into_iter().map(|(_, r)| r).collect()
}

/// How many attributes a relation has (dropped ones included).
unsafe fn relnatts(relid: pg_sys::Oid) -> i16 {
    let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, pg_sys::Datum::from(relid));
    if tuple.is_null() {
        return 0;
    }
    let natts = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relnatts;
    pg_sys::ReleaseSysCache(tuple);
    natts
}

/// A column's name, None for a dropped or missing one.
unsafe fn attname(relid: pg_sys::Oid, attnum: i16) -> Option<String> {
    let name = pg_sys::get_attname(relid, attnum, true);
    (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
}

/// Stores an example once its SQL ran, read-only, as the teacher; returns its id.
pub fn teach(question: Option<&str>, sql: Option<&str>, note: Option<&str>) -> i64 {
    require_teacher("sqlchat.teach()");
    require_writable("teach");
    let (question, sql, note) = teach::check_example(question, sql, note).or_raise();
    let count = owner("counting examples", || {
        Spi::connect(|c| c.select("SELECT count(*) FROM sqlchat.example", None, &[])?.first().get_one::<i64>())
    });
    if count.unwrap_or(0) >= teach::MAX_EXAMPLES {
        raise(Error::TeachingFull { what: "sqlchat.examples", limit: teach::MAX_EXAMPLES });
    }
    let mut trace = Trace::default();
    if let Err(f) = exec::run_traced(&sql, Limits::from_settings(), &mut trace) {
        if f.is_cancel() {
            raise(Error::Cancelled { message: f.message });
        }
        raise(Error::TaughtSql { sqlstate: f.sqlstate, message: f.message, refusal: f.refusal });
    }
    let reads = serde_json::to_string(&reads_by_name(&trace)).unwrap_or_else(|_| "[]".into());
    let teacher = Caller::current().name;
    owner("storing the example", || {
        Spi::connect_mut(|c| {
            c.update(
                "INSERT INTO sqlchat.example (question, sql, note, reads, taught_by) \
                 VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id",
                None,
                &[question.as_str().into(), sql.as_str().into(), note.into(), reads.into(), teacher.as_str().into()],
            )?
            .first()
            .get_one::<i64>()
        })
    })
    .unwrap_or_default()
}

/// Deletes a row of `table` by id (examples, definitions); raises when there is none.
fn delete(table: &'static str, what: &'static str, id: i64) {
    let deleted = owner("deleting", || {
        Spi::connect_mut(|c| {
            Ok(c.update(&format!("DELETE FROM sqlchat.{table} WHERE id = $1"), None, &[id.into()])?.len())
        })
    });
    if deleted == 0 {
        raise(Error::TeachNotFound { what, id, own: false });
    }
}

pub fn unteach(id: i64) {
    require_teacher("sqlchat.unteach()");
    require_writable("unteach");
    delete("example", "example", id);
}

pub fn define(term: Option<&str>, meaning: Option<&str>) -> i64 {
    require_teacher("sqlchat.define()");
    require_writable("define");
    let (term, meaning) = teach::check_definition(term, meaning).or_raise();
    let count = owner("counting definitions", || {
        Spi::connect(|c| c.select("SELECT count(*) FROM sqlchat.definition", None, &[])?.first().get_one::<i64>())
    });
    if count.unwrap_or(0) >= teach::MAX_DEFINITIONS {
        raise(Error::TeachingFull { what: "sqlchat.definitions", limit: teach::MAX_DEFINITIONS });
    }
    let who = Caller::current().name;
    owner("storing the definition", || {
        Spi::connect_mut(|c| {
            c.update(
                "INSERT INTO sqlchat.definition (term, meaning, defined_by) VALUES ($1, $2, $3) RETURNING id",
                None,
                &[term.into(), meaning.as_str().into(), who.as_str().into()],
            )?
            .first()
            .get_one::<i64>()
        })
    })
    .unwrap_or_default()
}

pub fn undefine(id: i64) {
    require_teacher("sqlchat.undefine()");
    require_writable("undefine");
    delete("definition", "definition", id);
}

/// Marks a column private (or not); superusers and the table's owner.
pub fn set_private(table: pg_sys::Oid, column: &str, private: bool) {
    let owner_oid = unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, pg_sys::Datum::from(table));
        if tuple.is_null() {
            raise(Error::InvalidArgument {
                what: format!("relation {table} does not exist"),
                hint: "Name an existing table.".into(),
            });
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    };
    let allowed = unsafe { pg_sys::superuser() || pg_sys::has_privs_of_role(pg_sys::GetUserId(), owner_oid) };
    let table_name = unsafe { crate::exec::trust::cstr(pg_sys::get_rel_name(table)) };
    if !allowed {
        raise(Error::Privileged {
            what: format!("sqlchat.set_private() on {table_name}"),
            role: Caller::current().name,
            hint: "Ask a superuser or the owner of the table.".into(),
        });
    }
    require_writable("mark a column private");
    let c_column = std::ffi::CString::new(column).unwrap_or_default();
    let attnum = unsafe { pg_sys::get_attnum(table, c_column.as_ptr()) };
    if attnum <= 0 {
        raise(Error::InvalidArgument {
            what: format!("column \"{column}\" of relation {table_name} does not exist"),
            hint: "Name a column of the table (sqlchat.private_columns lists those marked already).".into(),
        });
    }
    let who = Caller::current().name;
    owner("marking the column", || {
        Spi::connect_mut(|c| {
            if private {
                c.update(
                    "INSERT INTO sqlchat.private_column (table_oid, column_name, attnum, marked_by) \
                     VALUES ($1::oid::regclass, $2, $3, $4) ON CONFLICT (table_oid, column_name) \
                     DO UPDATE SET attnum = excluded.attnum, marked_by = excluded.marked_by, marked_at = now()",
                    None,
                    &[table.into(), column.into(), attnum.into(), who.as_str().into()],
                )?;
            } else {
                c.update(
                    "DELETE FROM sqlchat.private_column WHERE table_oid = $1::oid::regclass \
                     AND (column_name = $2 OR attnum = $3)",
                    None,
                    &[table.into(), column.into(), attnum.into()],
                )?;
            }
            Ok(())
        })
    });
}

/// Feedback on one of the caller's own turns.
pub fn feedback(turn: i64, helpful: Option<bool>, correction: Option<&str>) {
    require_writable("give feedback");
    let Some(helpful) = helpful else {
        raise(Error::InvalidArgument {
            what: "helpful must not be NULL".into(),
            hint: "Pass true when the answer helped, false when it did not (and a correction).".into(),
        })
    };
    let correction = teach::check_correction(correction).or_raise();
    let role = Caller::current();
    let stored = owner("storing the feedback", || {
        Spi::connect_mut(|c| {
            let own = c
                .select(
                    "SELECT count(*) FROM sqlchat.turn WHERE id = $1 AND role_oid = $2 AND role_name = $3",
                    None,
                    &[turn.into(), role.oid.into(), role.name.as_str().into()],
                )?
                .first()
                .get_one::<i64>()?
                .unwrap_or(0);
            if own == 0 {
                return Ok(false);
            }
            c.update(
                "INSERT INTO sqlchat.feedback (turn_id, helpful, correction) VALUES ($1, $2, $3) \
                 ON CONFLICT (turn_id) DO UPDATE SET helpful = excluded.helpful, correction = excluded.correction, \
                 given_at = now()",
                None,
                &[turn.into(), helpful.into(), correction.clone().into()],
            )?;
            Ok(true)
        })
    });
    if !stored {
        raise(Error::TeachNotFound { what: "turn", id: turn, own: true });
    }
}

/// Teaches a turn someone gave feedback on: its question with its SQL, or `sql` instead.
pub fn teach_from_turn(turn: i64, sql: Option<&str>) -> i64 {
    require_teacher("sqlchat.teach_from_turn()");
    require_writable("teach");
    let found = owner("reading the turn", || {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT t.question, t.sql FROM sqlchat.feedback f JOIN sqlchat.turn t ON t.id = f.turn_id \
                 WHERE f.turn_id = $1",
                None,
                &[turn.into()],
            )?;
            if t.is_empty() {
                Ok(None)
            } else {
                Ok(Some(t.first().get_two::<String, String>()?))
            }
        })
    });
    let Some((question, turn_sql)) = found else { raise(Error::TeachNotFound { what: "turn", id: turn, own: false }) };
    let Some(sql) = sql.map(str::to_string).or(turn_sql) else {
        raise(Error::InvalidArgument {
            what: format!("turn {turn} has no SQL"),
            hint: "Pass the SQL that answers its question: sqlchat.teach_from_turn(turn, sql).".into(),
        })
    };
    let id = teach(question.as_deref(), Some(&sql), None);
    owner("linking the feedback", || {
        Spi::connect_mut(|c| {
            c.update("UPDATE sqlchat.feedback SET example_id = $2 WHERE turn_id = $1", None, &[turn.into(), id.into()])
                .map(|_| ())
        })
    });
    id
}

/// One row of `sqlchat.examples`.
pub type ExampleRow = (
    i64,
    String,
    String,
    Vec<String>,
    Option<String>,
    String,
    Option<TimestampWithTimeZone>,
    i64,
    Option<TimestampWithTimeZone>,
);

/// Every example for superusers and the extension's owner; for others those they may use.
pub fn example_rows(usable: Option<&[i64]>) -> Vec<ExampleRow> {
    as_owner("reading the examples", || {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for row in c.select(
                "SELECT id, question, sql, ARRAY(SELECT r->>'schema' || '.' || (r->>'table') \
                 FROM jsonb_array_elements(reads) r), note, taught_by::text, taught_at, uses, last_used_at \
                 FROM sqlchat.example ORDER BY id",
                None,
                &[],
            )? {
                let id: i64 = row.get(1)?.unwrap_or_default();
                if usable.is_some_and(|u| !u.contains(&id)) {
                    continue;
                }
                out.push((
                    id,
                    row.get(2)?.unwrap_or_default(),
                    row.get(3)?.unwrap_or_default(),
                    row.get(4)?.unwrap_or_default(),
                    row.get(5)?,
                    row.get(6)?.unwrap_or_default(),
                    row.get(7)?,
                    row.get(8)?.unwrap_or_default(),
                    row.get(9)?,
                ));
            }
            Ok(out)
        })
    })
    .unwrap_or_default()
}

pub type DefinitionRow = (i64, Option<String>, String, String, Option<TimestampWithTimeZone>);

pub fn definition_rows() -> Vec<DefinitionRow> {
    as_owner("reading the definitions", || {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for row in c.select(
                "SELECT id, term, meaning, defined_by::text, defined_at FROM sqlchat.definition ORDER BY id",
                None,
                &[],
            )? {
                out.push((
                    row.get(1)?.unwrap_or_default(),
                    row.get(2)?,
                    row.get(3)?.unwrap_or_default(),
                    row.get(4)?.unwrap_or_default(),
                    row.get(5)?,
                ));
            }
            Ok(out)
        })
    })
    .unwrap_or_default()
}

pub type PrivateRow = (String, String, String, Option<TimestampWithTimeZone>);

/// Private columns of tables the caller may read the column of (all for admins).
pub fn private_rows(all: bool) -> Vec<PrivateRow> {
    let role = Caller::current();
    as_owner("reading the private columns", || {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for row in c.select(
                "SELECT p.table_oid::text, a.attname::text, p.marked_by::text, p.marked_at \
                 FROM sqlchat.private_column p \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = p.table_oid AND a.attnum > 0 AND NOT a.attisdropped \
                      AND (a.attname = p.column_name OR a.attnum = p.attnum) \
                 WHERE $1 OR has_column_privilege($2, p.table_oid, a.attnum, 'SELECT') \
                 ORDER BY 1, 2",
                None,
                &[all.into(), role.oid.into()],
            )? {
                out.push((
                    row.get(1)?.unwrap_or_default(),
                    row.get(2)?.unwrap_or_default(),
                    row.get(3)?.unwrap_or_default(),
                    row.get(4)?,
                ));
            }
            Ok(out)
        })
    })
    .unwrap_or_default()
}

pub type FeedbackRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    Option<TimestampWithTimeZone>,
    Option<i64>,
);

/// Submitted feedback: everyone's for teachers, the caller's own for others.
pub fn feedback_rows(all: bool) -> Vec<FeedbackRow> {
    let role = Caller::current();
    as_owner("reading the feedback", || {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for row in c.select(
                "SELECT t.id, t.role_name::text, t.session_id, t.question, t.sql, t.answer, f.helpful, f.correction, \
                 f.given_at, f.example_id \
                 FROM sqlchat.feedback f JOIN sqlchat.turn t ON t.id = f.turn_id \
                 WHERE $1 OR (t.role_oid = $2 AND t.role_name = $3) ORDER BY f.given_at, t.id",
                None,
                &[all.into(), role.oid.into(), role.name.as_str().into()],
            )? {
                out.push((
                    row.get(1)?.unwrap_or_default(),
                    row.get(2)?.unwrap_or_default(),
                    row.get(3)?.unwrap_or_default(),
                    row.get(4)?.unwrap_or_default(),
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?.unwrap_or_default(),
                    row.get(8)?,
                    row.get(9)?,
                    row.get(10)?,
                ));
            }
            Ok(out)
        })
    })
    .unwrap_or_default()
}
