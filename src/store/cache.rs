//! The LLM cache: generated SQL per role and exact prompt context, in sqlchat.cache with a
//! per-backend LRU in front. Only SQL is stored; a hit re-runs it under the caller's rights.

use super::{as_owner, writable, Caller};
use once_cell::unsync::Lazy;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

const LRU_ENTRIES: usize = 256;
/// Expired rows are deleted at most this often per backend, a bounded batch at a time.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);
const CLEANUP_BATCH: i64 = 500;

struct Entry {
    role: Caller,
    sql: String,
    expires: Instant,
}

thread_local! {
    static LRU: RefCell<Lazy<lru::LruCache<String, Entry>>> =
        RefCell::new(Lazy::new(|| lru::LruCache::new(NonZeroUsize::new(LRU_ENTRIES).expect("non-zero"))));
    static LAST_CLEANUP: RefCell<Option<Instant>> = const { RefCell::new(None) };
}

pub fn get(key: &str, role: &Caller) -> Option<String> {
    let hot = LRU.with(|l| {
        let mut l = l.borrow_mut();
        match l.get(key) {
            Some(e) if e.role == *role && e.expires > Instant::now() => Some(e.sql.clone()),
            Some(_) => {
                l.pop(key);
                None
            }
            None => None,
        }
    });
    if hot.is_some() {
        return hot;
    }
    let stored = as_owner("reading the cache", || {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT sql, extract(epoch FROM expires_at - now())::float8 FROM sqlchat.cache \
                 WHERE key = $1 AND role_oid = $2 AND role_name = $3 AND expires_at > now()",
                None,
                &[key.into(), role.oid.into(), role.name.as_str().into()],
            )?;
            if t.is_empty() {
                Ok((None, None))
            } else {
                t.first().get_two::<String, f64>()
            }
        })
    })?;
    let (sql, left) = (stored.0?, stored.1.unwrap_or(0.0));
    remember(key, role, &sql, Duration::from_secs_f64(left.max(0.0)));
    Some(sql)
}

fn remember(key: &str, role: &Caller, sql: &str, ttl: Duration) {
    LRU.with(|l| {
        l.borrow_mut()
            .put(key.to_string(), Entry { role: role.clone(), sql: sql.to_string(), expires: Instant::now() + ttl })
    });
}

pub fn put(key: &str, role: &Caller, model: &str, sql: &str, ttl_s: i32) {
    if ttl_s <= 0 {
        return;
    }
    remember(key, role, sql, Duration::from_secs(ttl_s as u64));
    if !writable() {
        return;
    }
    let cleanup = LAST_CLEANUP.with(|c| {
        let due = c.borrow().is_none_or(|t| t.elapsed() >= CLEANUP_EVERY);
        if due {
            *c.borrow_mut() = Some(Instant::now());
        }
        due
    });
    as_owner("writing the cache", || {
        Spi::connect_mut(|c| {
            c.update(
                "INSERT INTO sqlchat.cache (key, role_oid, role_name, model, sql, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) \
                 ON CONFLICT (key) DO UPDATE SET sql = excluded.sql, model = excluded.model, \
                 created_at = now(), expires_at = excluded.expires_at \
                 WHERE sqlchat.cache.role_oid = excluded.role_oid AND sqlchat.cache.role_name = excluded.role_name",
                None,
                &[
                    key.into(),
                    role.oid.into(),
                    role.name.as_str().into(),
                    model.into(),
                    sql.into(),
                    (ttl_s as f64).into(),
                ],
            )?;
            if cleanup {
                // Rows another transaction holds are skipped: one role's open transaction never
                // makes another role's ask wait.
                c.update(
                    "DELETE FROM sqlchat.cache WHERE ctid = ANY(ARRAY( \
                     SELECT ctid FROM sqlchat.cache WHERE expires_at < now() LIMIT $1 FOR UPDATE SKIP LOCKED))",
                    None,
                    &[CLEANUP_BATCH.into()],
                )?;
            }
            Ok(())
        })
    });
}

/// Empties the cache (table and this backend's LRU); the number of rows deleted.
pub fn clear() -> i64 {
    LRU.with(|l| l.borrow_mut().clear());
    if !writable() {
        return 0;
    }
    as_owner("clearing the cache", || {
        Spi::connect_mut(|c| Ok(c.update("DELETE FROM sqlchat.cache", None, &[])?.len() as i64))
    })
    .unwrap_or(0)
}
