//! The catalog seen through SPI: one introspection query (sql/catalog.sql) and the schema index
//! built from it, cached per backend unfiltered and reloaded when the schema changes, then
//! filtered by the caller's privileges on every call (role membership changes fire no
//! invalidation, so filtering is never cached).
//!
//! A new backend does not introspect a large catalog again: the first one to read a catalog
//! version leaves a snapshot of it (catalog and index) in the data directory, keyed by a
//! fingerprint of the system catalogs it was read from, and the next ones load it when the
//! fingerprint still matches. The snapshot holds what pg_class and friends hold, for the server's
//! own user only (the data directory's permissions); a standby keeps its own.

use pgrx::atomics::PgAtomic;
use pgrx::pg_shmem_init;
use pgrx::pg_sys;
use pgrx::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use sqlchat_core::catalog::Catalog;
use sqlchat_core::error::{Error, Result};
use sqlchat_core::lang::SchemaIndex;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const CATALOG_SQL: &str = include_str!("../sql/catalog.sql");

/// Comments change no relcache entry, so they are noticed by this cheap fingerprint.
/// Which object each comment belongs to counts too: two comments swapped change it.
const COMMENTS_FINGERPRINT_SQL: &str = "SELECT count(*)::text || ':' || coalesce(sum(hashtext( \
       objoid::text || '/' || classoid::text || '/' || objsubid::text || '/' || description)::int8), 0)::text \
     FROM pg_catalog.pg_description WHERE objoid >= 16384";

const VISIBLE_SQL: &str = "SELECT c.oid::int8, p.whole, \
       CASE WHEN p.whole THEN NULL ELSE ARRAY( \
           SELECT a.attname::text FROM pg_catalog.pg_attribute a \
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             AND has_column_privilege(c.oid, a.attnum, 'SELECT') ORDER BY a.attnum) END \
     FROM pg_catalog.pg_class c CROSS JOIN LATERAL (SELECT has_table_privilege(c.oid, 'SELECT') AS whole) p \
     WHERE c.oid::int8 = ANY($1) AND has_schema_privilege(c.relnamespace, 'USAGE') \
       AND (p.whole OR has_any_column_privilege(c.oid, 'SELECT'))";

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

/// A catalog version as this backend holds it.
#[derive(Clone)]
struct Cached {
    comments: String,
    catalog: Arc<Catalog>,
    index: Arc<SchemaIndex>,
}

/// What one caller may read, and the index of the whole catalog to read it through.
pub struct Visible {
    pub catalog: Arc<Catalog>,
    pub index: Arc<SchemaIndex>,
}

/// Everything sql/catalog.sql reads, as row counts and sums of row-version hashes: any committed
/// change to a table, column, key, default, comment, enum, type or schema changes it (ANALYZE's
/// in-place statistics do not; row estimates are refreshed with the relations that change).
const FINGERPRINT_SQL: &str = "SELECT concat_ws(':', \
       (SELECT count(*) || '/' || coalesce(sum(hashtext(xmin::text)), 0) FROM pg_catalog.pg_class), \
       (SELECT count(*) || '/' || coalesce(sum(hashtext(xmin::text)), 0) FROM pg_catalog.pg_attribute), \
       (SELECT count(*) || '/' || coalesce(sum(hashtext(xmin::text)), 0) FROM pg_catalog.pg_attrdef), \
       (SELECT count(*) || '/' || coalesce(sum(hashtext(xmin::text)), 0) FROM pg_catalog.pg_constraint), \
       (SELECT count(*) || '/' || coalesce(sum(hashtext(xmin::text)), 0) FROM pg_catalog.pg_index), \
       (SELECT count(*) || '/' || coalesce(sum(hashtext(xmin::text)), 0) FROM pg_catalog.pg_namespace), \
       (SELECT count(*) || '/' || coalesce(sum(hashtext(xmin::text)), 0) FROM pg_catalog.pg_type), \
       (SELECT count(*) || '/' || coalesce(sum(hashtext(xmin::text)), 0) FROM pg_catalog.pg_enum))";

/// Changes whenever the snapshot's layout does (the structs it holds or this format).
const SNAPSHOT_FORMAT: &str = concat!("sqlchat-catalog-1/", env!("CARGO_PKG_VERSION"));
/// A snapshot larger than this is not read (nor written).
const MAX_SNAPSHOT_BYTES: usize = 512 << 20;

/// With `shared_preload_libraries = 'sqlchat'`: a counter every backend raises when it commits a
/// transaction that changed what the catalog query reads (its invalidation callbacks fired and it
/// wrote). A snapshot taken at the current value is current without checking the fingerprint.
static GENERATION: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"sqlchat_catalog_generation") };
static SHARED_GENERATION: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This transaction saw a catalog invalidation (its own change, or another's it caught up with).
    static SAW_CHANGE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
    // Only ever borrowed for a moment: callbacks run inside any PostgreSQL call.
    static CHANGED: RefCell<Changed> = const { RefCell::new(Changed::Nothing) };
}

fn note_change(relid: Option<u32>) {
    SAW_CHANGE.with(|s| s.set(true));
    CHANGED.with(|c| {
        let mut c = c.borrow_mut();
        match (&mut *c, relid) {
            (Changed::Everything, _) => {}
            (_, None) => *c = Changed::Everything,
            (Changed::Relations(set), Some(r)) => {
                set.insert(r);
            }
            (Changed::Nothing, Some(r)) => *c = Changed::Relations(HashSet::from_iter([r])),
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

/// Raises the shared generation when a transaction that changed the catalog commits. Only a
/// transaction that wrote (has an xid) raises it: one that merely caught up with another's
/// change does not.
#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if !matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_PREPARE | XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_COMMIT) {
        return;
    }
    let saw = SAW_CHANGE.with(|s| s.replace(false));
    let wrote = unsafe { pg_sys::GetTopTransactionIdIfAny() } != pg_sys::InvalidTransactionId;
    if saw && wrote && event != XACT_EVENT_ABORT && SHARED_GENERATION.load(Ordering::Relaxed) {
        GENERATION.get().fetch_add(1, Ordering::AcqRel);
    }
}

/// The shared generation and the server's start, when the library is preloaded and this is not
/// a standby (whose changes arrive by replay, where no callback of ours runs).
fn shared_generation() -> Option<String> {
    if !SHARED_GENERATION.load(Ordering::Relaxed) || unsafe { pg_sys::RecoveryInProgress() } {
        return None;
    }
    let started = unsafe { pg_sys::PgStartTime };
    Some(format!("{started}:{}", GENERATION.get().load(Ordering::Acquire)))
}

/// Called once from _PG_init.
// pgrx's shared-memory macro tests the features of every PostgreSQL version it supports.
#[allow(unexpected_cfgs)]
pub fn register_invalidation() {
    unsafe {
        if pg_sys::process_shared_preload_libraries_in_progress {
            pg_shmem_init!(GENERATION = AtomicU64::new(0));
            SHARED_GENERATION.store(true, Ordering::Relaxed);
        }
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
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

/// The whole catalog, unfiltered, and its index: from the backend's cache, with what changed
/// since read again; in a new backend from the snapshot of this catalog version when there is one.
fn full_catalog() -> Result<Cached> {
    let comments = comments_fingerprint()?;
    let changed = CHANGED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    let mut guard = ReloadGuard(false);
    let cached = CACHE.with(|c| c.borrow().as_ref().filter(|cached| cached.comments == comments).cloned());
    let fresh = match (cached, changed) {
        (Some(cached), Changed::Nothing) => cached,
        (Some(cached), Changed::Relations(relids)) => {
            let catalog = patch(&cached.catalog, &relids)?;
            let index = SchemaIndex::patch(&cached.index, &catalog, &relids);
            Cached { comments, catalog: Arc::new(catalog), index: Arc::new(index) }
        }
        _ => load(comments)?,
    };
    CACHE.with(|c| *c.borrow_mut() = Some(fresh.clone()));
    guard.0 = true;
    Ok(fresh)
}

/// The catalog and index of the current version: the snapshot when it is of this version, else
/// introspected and indexed (and left as the snapshot for the backends to come).
fn load(comments: String) -> Result<Cached> {
    // A transaction that wrote may see catalog changes of its own that nobody else sees yet, and one
    // that reads through a snapshot taken at its start (REPEATABLE READ, SERIALIZABLE) may not see
    // changes committed since: neither trusts the generation (which counts committed changes) nor
    // leaves a snapshot.
    let wrote = unsafe {
        pg_sys::GetTopTransactionIdIfAny() != pg_sys::InvalidTransactionId
            || pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32
    };
    // Both read before the catalog itself: a change committed in between makes them stale, never
    // the snapshot.
    let generation = if wrote { None } else { shared_generation() };
    let mut header = snapshot::Header { format: SNAPSHOT_FORMAT.into(), comments, fingerprint: String::new() };
    let found = snapshot::read().filter(|(h, _)| h.format == header.format && h.comments == header.comments);
    // The generation vouches for the fingerprint it was last seen with.
    let vouched = generation.as_ref().and_then(|g| snapshot::fingerprint_at(g));
    if let (Some(fingerprint), Some((found_header, body))) = (&vouched, &found) {
        if *fingerprint == found_header.fingerprint {
            if let Some(cached) = snapshot::decode(&header.comments, body) {
                return Ok(cached);
            }
        }
    }
    header.fingerprint = catalog_fingerprint()?;
    let vouch = |fingerprint: &str| {
        if let Some(g) = &generation {
            snapshot::vouch(g, fingerprint);
        }
    };
    if let Some((found_header, body)) = &found {
        if found_header.fingerprint == header.fingerprint {
            if let Some(cached) = snapshot::decode(&header.comments, body) {
                // Current after all (the generation moved for something else, ANALYZE say).
                vouch(&header.fingerprint);
                return Ok(cached);
            }
        }
    }
    let catalog = introspect(None)?;
    let index = SchemaIndex::build(&catalog);
    if !wrote {
        if let Some(body) = snapshot::encode(&catalog, &index) {
            snapshot::write(&header, &body);
            vouch(&header.fingerprint);
        }
    }
    Ok(Cached { comments: header.comments, catalog: Arc::new(catalog), index: Arc::new(index) })
}

fn catalog_fingerprint() -> Result<String> {
    Spi::connect(|c| c.select(FINGERPRINT_SQL, None, &[])?.first().get_one::<String>())
        .map_err(spi_error)
        .map(|s| s.unwrap_or_default())
}

/// Snapshots in `$PGDATA/sqlchat/catalog-<database oid>.bin`: a header line saying which catalog
/// version they hold, then the catalog and index. Best effort: a snapshot that cannot be read or
/// written is rebuilt, never an error.
mod snapshot {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::io::Write;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(super) struct Header {
        pub format: String,
        pub comments: String,
        /// The system catalogs' fingerprint it was read at.
        pub fingerprint: String,
    }

    /// A small file beside the snapshot: at this shared generation the catalogs had this
    /// fingerprint (preloaded primaries only). Rewritten when the generation moves without
    /// changing the catalog, which spares rewriting the snapshot.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Vouch {
        generation: String,
        fingerprint: String,
    }

    fn vouch_path() -> Option<PathBuf> {
        Some(path()?.with_extension("gen"))
    }

    pub(super) fn fingerprint_at(generation: &str) -> Option<String> {
        let v: Vouch = serde_json::from_slice(&std::fs::read(vouch_path()?).ok()?).ok()?;
        (v.generation == generation).then_some(v.fingerprint)
    }

    pub(super) fn vouch(generation: &str, fingerprint: &str) {
        let v = Vouch { generation: generation.into(), fingerprint: fingerprint.into() };
        if let (Some(path), Ok(bytes)) = (vouch_path(), serde_json::to_vec(&v)) {
            replace(&path, &[&bytes]);
        }
    }

    /// Writes a file whole or not at all: readers see the old one or the new one.
    fn replace(path: &std::path::Path, parts: &[&[u8]]) {
        let Some(dir) = path.parent() else { return };
        let tmp = dir.join(format!(
            "{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
            std::process::id()
        ));
        let written = (|| {
            std::fs::create_dir_all(dir)?;
            let mut f = std::fs::File::create(&tmp)?;
            for part in parts {
                f.write_all(part)?;
            }
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    fn path() -> Option<PathBuf> {
        // SAFETY: DataDir is set before any backend runs SQL and never changes afterwards.
        let dir = unsafe { pg_sys::DataDir };
        if dir.is_null() {
            return None;
        }
        let dir = unsafe { std::ffi::CStr::from_ptr(dir) }.to_str().ok()?;
        let db = u32::from(unsafe { pg_sys::MyDatabaseId });
        Some(PathBuf::from(dir).join("sqlchat").join(format!("catalog-{db}.bin")))
    }

    fn config() -> impl bincode::config::Config {
        bincode::config::standard().with_limit::<MAX_SNAPSHOT_BYTES>()
    }

    /// The snapshot's header and its body (still encoded).
    pub(super) fn read() -> Option<(Header, Vec<u8>)> {
        let mut bytes = std::fs::read(path()?).ok()?;
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let header: Header = serde_json::from_slice(&bytes[..newline]).ok()?;
        let body = bytes.split_off(newline + 1);
        Some((header, body))
    }

    pub(super) fn decode(comments: &str, body: &[u8]) -> Option<Cached> {
        let ((catalog, mut index), _): ((Catalog, SchemaIndex), usize) =
            bincode::serde::decode_from_slice(body, config()).ok()?;
        index.after_deserialize();
        // An index that does not cover its catalog is not used.
        (index.tables.len() == catalog.tables.len()).then(|| Cached {
            comments: comments.to_string(),
            catalog: Arc::new(catalog),
            index: Arc::new(index),
        })
    }

    pub(super) fn encode(catalog: &Catalog, index: &SchemaIndex) -> Option<Vec<u8>> {
        bincode::serde::encode_to_vec((catalog, index), config()).ok()
    }

    pub(super) fn write(header: &Header, body: &[u8]) {
        if let (Some(path), Ok(header)) = (path(), serde_json::to_vec(header)) {
            replace(&path, &[&header, b"\n", body]);
        }
    }
}

/// What the current role may read: tables it can SELECT from (wholly or some columns of) in
/// schemas it has USAGE on; hidden columns, and foreign keys to hidden tables or through
/// hidden columns, are removed. The index covers the whole catalog; the core reads it only
/// through a view of what the role may read.
pub fn visible_catalog() -> Result<Visible> {
    // The privilege checks must be PostgreSQL's own, not functions the caller put on its path.
    crate::gucs::with_search_path(crate::gucs::SYSTEM_SEARCH_PATH, visible_catalog_inner)
}

fn visible_catalog_inner() -> Result<Visible> {
    let Cached { catalog: full, index, .. } = full_catalog()?;
    let oids: Vec<i64> = full.tables.iter().map(|t| t.oid as i64).collect();
    let visible: HashMap<u32, Option<Vec<String>>> = Spi::connect(|c| {
        let mut out = HashMap::default();
        for row in c.select(VISIBLE_SQL, None, &[oids.into()])? {
            let oid: i64 = row.get(1)?.unwrap_or_default();
            let whole: bool = row.get(2)?.unwrap_or(false);
            let columns: Option<Vec<String>> = if whole { None } else { row.get(3)? };
            out.insert(oid as u32, columns);
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(spi_error)?;
    // A role that reads everything (and no key leads outside) sees the cached catalog itself.
    let everything = visible.len() == full.tables.len() && visible.values().all(Option::is_none);
    let catalog = if everything && keys_stay_inside(&full) { full } else { Arc::new(filter(&full, &visible)) };
    Ok(Visible { catalog, index })
}

/// Whether every foreign key refers to columns of a table of the catalog.
fn keys_stay_inside(catalog: &Catalog) -> bool {
    let columns: HashMap<(&str, &str), HashSet<&str>> = catalog
        .tables
        .iter()
        .map(|t| ((t.schema.as_str(), t.name.as_str()), t.columns.iter().map(|c| c.name.as_str()).collect()))
        .collect();
    catalog.tables.iter().flat_map(|t| &t.foreign_keys).all(|fk| {
        columns
            .get(&(fk.ref_schema.as_str(), fk.ref_table.as_str()))
            .is_some_and(|cols| fk.ref_columns.iter().all(|c| cols.contains(c.as_str())))
    })
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
    let readable: HashMap<(String, String), HashSet<String>> = tables
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
        let c = visible_catalog().unwrap().catalog;
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
        assert!(visible_catalog().unwrap().catalog.find("public", "a").unwrap().comment.is_none());
        Spi::run("COMMENT ON TABLE a IS 'now with a comment'").unwrap();
        assert_eq!(
            visible_catalog().unwrap().catalog.find("public", "a").unwrap().comment.as_deref(),
            Some("now with a comment")
        );
        Spi::run("ALTER TABLE a ADD COLUMN b text").unwrap();
        assert!(visible_catalog().unwrap().catalog.find("public", "a").unwrap().column("b").is_some());
        Spi::run("DROP TABLE a").unwrap();
        assert!(visible_catalog().unwrap().catalog.find("public", "a").is_none());
    }

    #[pg_test]
    fn a_changed_table_is_read_again_alone() {
        use std::sync::atomic::Ordering;
        Spi::run("CREATE TABLE grows (id int PRIMARY KEY, v text)").unwrap();
        visible_catalog().unwrap();
        let loads = FULL_LOADS.load(Ordering::Relaxed);
        Spi::run("INSERT INTO grows SELECT g, 'x' FROM generate_series(1, 500) g; ANALYZE grows").unwrap();
        let c = visible_catalog().unwrap().catalog;
        assert!(c.find("public", "grows").unwrap().row_estimate >= 500.0);
        Spi::run("CREATE TABLE newcomer (id int)").unwrap();
        assert!(visible_catalog().unwrap().catalog.find("public", "newcomer").is_some());
        Spi::run("CREATE INDEX ON grows (v)").unwrap();
        let c = visible_catalog().unwrap().catalog;
        assert!(c.find("public", "grows").is_some());
        assert_eq!(FULL_LOADS.load(Ordering::Relaxed), loads, "only the changed relations were read again");
        Spi::run("CREATE TYPE mood2 AS ENUM ('a')").unwrap();
        visible_catalog().unwrap();
        assert_eq!(FULL_LOADS.load(Ordering::Relaxed), loads + 1, "a new type reloads everything");
    }

    #[pg_test]
    fn snapshots_hold_the_catalog_and_its_index() {
        Spi::run("CREATE TABLE snap_people (id int PRIMARY KEY, full_name text, city text)").unwrap();
        let full = introspect(None).unwrap();
        let index = SchemaIndex::build(&full);
        let header = snapshot::Header {
            format: SNAPSHOT_FORMAT.into(),
            comments: "c".into(),
            fingerprint: catalog_fingerprint().unwrap(),
        };
        snapshot::write(&header, &snapshot::encode(&full, &index).unwrap());
        let (read_header, body) = snapshot::read().expect("a snapshot");
        assert_eq!(read_header, header);
        let cached = snapshot::decode("c", &body).expect("decodes");
        assert_eq!(*cached.catalog, full);
        let view = cached.index.view(&cached.catalog);
        let people = full.tables.iter().position(|t| t.name == "snap_people").unwrap();
        let key = sqlchat_core::lang::stem("snap") + &sqlchat_core::lang::stem("people");
        assert_eq!(view.lookup(&key), vec![(people, None)]);
        // What the catalog query reads changing changes the fingerprint. (A row changed again by
        // the transaction that made it keeps its xmin: such a transaction neither trusts nor
        // leaves snapshots; other backends only ever see committed rows, whose changes do.)
        Spi::run("CREATE TABLE snap_other (id int)").unwrap();
        assert_ne!(catalog_fingerprint().unwrap(), header.fingerprint);
        assert!(snapshot::decode("c", &body[..body.len() / 2]).is_none(), "a cut snapshot is not used");
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
        let c = visible_catalog().unwrap().catalog;
        Spi::run("RESET ROLE").unwrap();
        assert!(c.find("public", "open_t").is_some());
        assert!(c.find("public", "hidden_t").is_none());
        let partial = c.find("public", "partial_t").unwrap();
        assert!(partial.column("salary").is_none());
        assert!(partial.column("id").is_some());
        let text = serde_json::to_string(&*c).unwrap();
        assert!(!text.contains("top secret"));
        assert!(!text.contains("salary"));
        assert!(!text.contains("secret_key"), "a key to a hidden column names it");
    }
}
