//! The catalog seen through SPI: one introspection query (sql/catalog.sql), cached per backend
//! unfiltered and reloaded when the schema changes, then filtered by the caller's privileges on
//! every call (role membership changes fire no invalidation, so filtering is never cached).

use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::catalog::Catalog;
use sqlchat_core::error::{Error, Result};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const CATALOG_SQL: &str = include_str!("../sql/catalog.sql");

/// Comments change no relcache entry, so they are noticed by this cheap fingerprint.
const COMMENTS_FINGERPRINT_SQL: &str = "SELECT count(*)::text || ':' || coalesce(sum(hashtext(description)), 0)::text \
     FROM pg_catalog.pg_description WHERE objoid >= 16384";

const VISIBLE_SQL: &str = "SELECT c.oid::int8, has_table_privilege(c.oid, 'SELECT'), \
       CASE WHEN has_table_privilege(c.oid, 'SELECT') THEN NULL ELSE ARRAY( \
           SELECT a.attname::text FROM pg_catalog.pg_attribute a \
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             AND has_column_privilege(c.oid, a.attnum, 'SELECT') ORDER BY a.attnum) END \
     FROM pg_catalog.pg_class c \
     WHERE c.oid::int8 = ANY($1) AND has_schema_privilege(c.relnamespace, 'USAGE') \
       AND has_any_column_privilege(c.oid, 'SELECT')";

/// Where sql/catalog.sql takes the condition that reloads only some relations.
const RELATIONS_MARKER: &str = "-- only the relations in $1 (when reloading those that changed)";

/// What changed since the catalog was cached, as invalidation callbacks (which also fire on
/// standbys) report it: a table's ANALYZE, ALTER or CREATE reads that table again only, while a
/// schema or enum change, a comment, or an invalidation of everything reads all again.
#[derive(Debug, Default)]
enum Changed {
    #[default]
    Nothing,
    Relations(HashSet<u32>),
    Everything,
}

struct Cached {
    comments: String,
    catalog: Arc<Catalog>,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
    // Only ever borrowed for a moment: callbacks run inside any PostgreSQL call.
    static CHANGED: RefCell<Changed> = const { RefCell::new(Changed::Nothing) };
}

fn note_change(relid: Option<u32>) {
    CHANGED.with(|c| {
        let mut c = c.borrow_mut();
        match (&mut *c, relid) {
            (Changed::Everything, _) => {}
            (_, None) => *c = Changed::Everything,
            (Changed::Relations(set), Some(r)) => {
                set.insert(r);
            }
            (Changed::Nothing, Some(r)) => *c = Changed::Relations(HashSet::from([r])),
        }
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    note_change((relid != pg_sys::InvalidOid).then(|| u32::from(relid)));
}

#[pg_guard]
unsafe extern "C-unwind" fn on_syscache(_arg: pg_sys::Datum, _cache_id: i32, _hash: u32) {
    note_change(None);
}

/// Called once from _PG_init.
pub fn register_invalidation() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0));
        // Not TYPEOID: every CREATE TABLE (temporary ones too) makes a row type, and a full reload
        // for each would cost a large catalog dearly; enum labels come through ENUMOID.
        for cache in [pg_sys::SysCacheIdentifier::NAMESPACEOID, pg_sys::SysCacheIdentifier::ENUMOID] {
            pg_sys::CacheRegisterSyscacheCallback(cache as i32, Some(on_syscache), pg_sys::Datum::from(0));
        }
    }
}

fn spi_error(e: pgrx::spi::Error) -> Error {
    Error::Internal { detail: format!("catalog query failed: {e}") }
}

fn comments_fingerprint() -> Result<String> {
    Spi::connect(|c| c.select(COMMENTS_FINGERPRINT_SQL, None, &[])?.first().get_one::<String>())
        .map_err(spi_error)
        .map(|s| s.unwrap_or_default())
}

#[cfg(any(test, feature = "pg_test"))]
static FULL_LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs the introspection query, for every relation or only for `relids`.
fn introspect(relids: Option<&HashSet<u32>>) -> Result<Catalog> {
    #[cfg(any(test, feature = "pg_test"))]
    if relids.is_none() {
        FULL_LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let json = Spi::connect(|c| match relids {
        None => c.select(CATALOG_SQL, None, &[])?.first().get_one::<String>(),
        Some(set) => {
            let sql =
                CATALOG_SQL.replace(RELATIONS_MARKER, "AND c.oid::pg_catalog.int8 OPERATOR(pg_catalog.=) ANY ($1)");
            let oids: Vec<i64> = set.iter().map(|&o| i64::from(o)).collect();
            c.select(sql.as_str(), None, &[oids.into()])?.first().get_one::<String>()
        }
    })
    .map_err(spi_error)?
    .unwrap_or_else(|| "{\"tables\":[]}".into());
    serde_json::from_str(&json).map_err(|e| Error::Internal { detail: format!("catalog JSON: {e}") })
}

/// The cached catalog with the relations in `relids` read again: changed ones replaced, new ones
/// added, dropped ones (or ones that no longer qualify, such as indexes) removed.
fn patch(cached: &Catalog, relids: &HashSet<u32>) -> Result<Catalog> {
    let fresh = introspect(Some(relids))?;
    let mut tables: Vec<_> = cached.tables.iter().filter(|t| !relids.contains(&t.oid)).cloned().collect();
    tables.extend(fresh.tables);
    tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Ok(Catalog { tables })
}

/// Marks everything changed unless disarmed: a reload that fails part-way must not leave the
/// changes it had taken forgotten.
struct ReloadGuard(bool);

impl Drop for ReloadGuard {
    fn drop(&mut self) {
        if !self.0 {
            note_change(None);
        }
    }
}

/// The whole catalog, unfiltered: from the backend's cache, with what changed since read again.
pub fn full_catalog() -> Result<Arc<Catalog>> {
    let comments = comments_fingerprint()?;
    let changed = CHANGED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    let mut guard = ReloadGuard(false);
    let cached = CACHE.with(|c| {
        c.borrow().as_ref().filter(|cached| cached.comments == comments).map(|cached| Arc::clone(&cached.catalog))
    });
    let catalog = match (cached, changed) {
        (Some(catalog), Changed::Nothing) => catalog,
        (Some(catalog), Changed::Relations(relids)) => Arc::new(patch(&catalog, &relids)?),
        _ => Arc::new(introspect(None)?),
    };
    CACHE.with(|c| *c.borrow_mut() = Some(Cached { comments, catalog: Arc::clone(&catalog) }));
    guard.0 = true;
    Ok(catalog)
}

/// What the current role may read: tables it can SELECT from (wholly or some columns of) in
/// schemas it has USAGE on; hidden columns, and foreign keys to hidden tables or through
/// hidden columns, are removed.
pub fn visible_catalog() -> Result<Catalog> {
    // The privilege checks must be PostgreSQL's own, not functions the caller put on its path.
    crate::gucs::with_search_path(crate::gucs::SYSTEM_SEARCH_PATH, visible_catalog_inner)
}

fn visible_catalog_inner() -> Result<Catalog> {
    let full = full_catalog()?;
    let oids: Vec<i64> = full.tables.iter().map(|t| t.oid as i64).collect();
    let visible: HashMap<u32, Option<Vec<String>>> = Spi::connect(|c| {
        let mut out = HashMap::new();
        for row in c.select(VISIBLE_SQL, None, &[oids.into()])? {
            let oid: i64 = row.get(1)?.unwrap_or_default();
            let whole: bool = row.get(2)?.unwrap_or(false);
            let columns: Option<Vec<String>> = if whole { None } else { row.get(3)? };
            out.insert(oid as u32, columns);
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(spi_error)?;
    Ok(filter(&full, &visible))
}

fn filter(full: &Catalog, visible: &HashMap<u32, Option<Vec<String>>>) -> Catalog {
    let mut tables: Vec<_> = full
        .tables
        .iter()
        .filter_map(|t| {
            let columns = visible.get(&t.oid)?;
            let mut t = t.clone();
            if let Some(allowed) = columns {
                t.columns.retain(|c| allowed.contains(&c.name));
                // A generation expression that reads a hidden column would name it.
                for c in &mut t.columns {
                    if c.default_refs.iter().any(|r| !allowed.contains(r)) {
                        c.default = None;
                        c.default_refs.clear();
                    }
                }
                t.primary_key.retain(|k| allowed.contains(k));
                t.foreign_keys.retain(|fk| fk.columns.iter().all(|c| allowed.contains(c)));
            }
            Some(t)
        })
        .collect();
    // A key to a hidden table, or to columns of it the role cannot read, would name them.
    let readable: HashMap<(String, String), std::collections::HashSet<String>> = tables
        .iter()
        .map(|t| ((t.schema.clone(), t.name.clone()), t.columns.iter().map(|c| c.name.clone()).collect()))
        .collect();
    for t in &mut tables {
        t.foreign_keys.retain(|fk| {
            readable
                .get(&(fk.ref_schema.clone(), fk.ref_table.clone()))
                .is_some_and(|cols| fk.ref_columns.iter().all(|c| cols.contains(c)))
        });
    }
    Catalog { tables }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn introspects_keys_comments_and_enums() {
        Spi::run(
            "CREATE TYPE mood AS ENUM ('sad', 'happy');
             CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, mood mood DEFAULT 'happy');
             CREATE TABLE pets (id int PRIMARY KEY, owner int REFERENCES people(id));
             COMMENT ON TABLE people IS 'Everyone we know';
             COMMENT ON COLUMN people.name IS 'Full name'",
        )
        .unwrap();
        let c = visible_catalog().unwrap();
        let people = c.find("public", "people").expect("people");
        assert_eq!(people.comment.as_deref(), Some("Everyone we know"));
        assert_eq!(people.primary_key, vec!["id"]);
        assert_eq!(people.column("name").unwrap().comment.as_deref(), Some("Full name"));
        assert!(people.column("name").unwrap().not_null);
        assert_eq!(people.column("mood").unwrap().enum_labels, vec!["sad", "happy"]);
        let pets = c.find("public", "pets").expect("pets");
        assert_eq!(pets.foreign_keys[0].ref_table, "people");
    }

    #[pg_test]
    fn comments_and_ddl_invalidate_the_cache() {
        Spi::run("CREATE TABLE a (id int)").unwrap();
        assert!(visible_catalog().unwrap().find("public", "a").unwrap().comment.is_none());
        Spi::run("COMMENT ON TABLE a IS 'now with a comment'").unwrap();
        assert_eq!(
            visible_catalog().unwrap().find("public", "a").unwrap().comment.as_deref(),
            Some("now with a comment")
        );
        Spi::run("ALTER TABLE a ADD COLUMN b text").unwrap();
        assert!(visible_catalog().unwrap().find("public", "a").unwrap().column("b").is_some());
        Spi::run("DROP TABLE a").unwrap();
        assert!(visible_catalog().unwrap().find("public", "a").is_none());
    }

    #[pg_test]
    fn a_changed_table_is_read_again_alone() {
        use std::sync::atomic::Ordering;
        Spi::run("CREATE TABLE grows (id int PRIMARY KEY, v text)").unwrap();
        visible_catalog().unwrap();
        let loads = FULL_LOADS.load(Ordering::Relaxed);
        Spi::run("INSERT INTO grows SELECT g, 'x' FROM generate_series(1, 500) g; ANALYZE grows").unwrap();
        let c = visible_catalog().unwrap();
        assert!(c.find("public", "grows").unwrap().row_estimate >= 500.0);
        Spi::run("CREATE TABLE newcomer (id int)").unwrap();
        assert!(visible_catalog().unwrap().find("public", "newcomer").is_some());
        Spi::run("CREATE INDEX ON grows (v)").unwrap();
        let c = visible_catalog().unwrap();
        assert!(c.find("public", "grows").is_some());
        assert_eq!(FULL_LOADS.load(Ordering::Relaxed), loads, "only the changed relations were read again");
        Spi::run("CREATE TYPE mood2 AS ENUM ('a')").unwrap();
        visible_catalog().unwrap();
        assert_eq!(FULL_LOADS.load(Ordering::Relaxed), loads + 1, "a new type reloads everything");
    }

    #[pg_test]
    fn hides_what_the_role_cannot_read() {
        Spi::run(
            "CREATE ROLE reader;
             CREATE TABLE open_t (id int, secret_col text, ok_col text);
             CREATE TABLE hidden_t (id int);
             CREATE TABLE partial_t (id int, salary int);
             CREATE TABLE refs_hidden (id int PRIMARY KEY);
             CREATE TABLE keyed (id int PRIMARY KEY, secret_key int UNIQUE);
             CREATE TABLE pointer (id int, k int REFERENCES keyed (secret_key));
             GRANT SELECT ON pointer TO reader;
             GRANT SELECT (id) ON keyed TO reader;
             GRANT SELECT ON open_t TO reader;
             GRANT SELECT (id) ON partial_t TO reader;
             COMMENT ON TABLE hidden_t IS 'top secret'",
        )
        .unwrap();
        Spi::run("SET ROLE reader").unwrap();
        let c = visible_catalog().unwrap();
        Spi::run("RESET ROLE").unwrap();
        assert!(c.find("public", "open_t").is_some());
        assert!(c.find("public", "hidden_t").is_none());
        let partial = c.find("public", "partial_t").unwrap();
        assert!(partial.column("salary").is_none());
        assert!(partial.column("id").is_some());
        let text = serde_json::to_string(&c).unwrap();
        assert!(!text.contains("top secret"));
        assert!(!text.contains("salary"));
        assert!(!text.contains("secret_key"), "a key to a hidden column names it");
    }
}
