//! The gateway client: one chat-completions POST with ureq on a helper thread that never touches
//! PostgreSQL, while the backend sleeps on its latch and the helper's wake-up socket, checking for
//! interrupts, so Ctrl-C, pg_cancel_backend and statement_timeout end the wait at once (57014).

use crate::gucs;
use once_cell::sync::OnceCell;
use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::error::{scrub, Error, Result};
use sqlchat_core::openai::{self, Message, Purpose};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest reply body read from the gateway.
pub const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;

static AGENT: OnceCell<ureq::Agent> = OnceCell::new();

fn agent() -> &'static ureq::Agent {
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .redirects(0)
            .user_agent(concat!("sqlchat/", env!("CARGO_PKG_VERSION")))
            .https_only(false)
            .build()
    })
}

/// Where and how to call the gateway, read from the settings on the backend's thread.
struct Target {
    url: String,
    authorization: Option<String>,
    timeout: Duration,
}

fn target() -> Result<Target> {
    let base = gucs::api_base().ok_or(Error::NotConfigured)?;
    check_base_url(&base)?;
    let authorization = gucs::auth_header().or_else(|| gucs::api_key().map(|k| format!("Bearer {k}")));
    Ok(Target {
        url: format!("{base}/chat/completions"),
        authorization,
        timeout: Duration::from_millis(gucs::request_timeout_ms()),
    })
}

/// Plain http only to this machine: a key must not cross a network in clear text.
fn check_base_url(base: &str) -> Result<()> {
    let lower = base.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = if host.starts_with('[') { host.split(']').next().unwrap_or("").trim_start_matches('[') } else { host.split(':').next().unwrap_or("") };
        if host == "localhost" || host == "::1" || host.starts_with("127.") {
            return Ok(());
        }
        return Err(Error::InvalidArgument {
            what: "sqlchat.api_base must use https:// unless the gateway is on this machine".into(),
            hint: "Use an https:// URL, or a loopback address (127.0.0.1, localhost) for a local gateway.".into(),
        });
    }
    Err(Error::InvalidArgument {
        what: "sqlchat.api_base must be an http:// or https:// URL".into(),
        hint: "For example: ALTER SYSTEM SET sqlchat.api_base = 'https://api.openai.com/v1'; SELECT pg_reload_conf();".into(),
    })
}

/// One chat call with the configured model; the reply's text.
pub fn chat(purpose: Purpose, messages: &[Message], temperature: f64) -> Result<String> {
    let target = target()?;
    let body = serde_json::to_vec(&openai::request_body(&gucs::model(), messages, temperature))
        .map_err(|e| Error::Internal { detail: e.to_string() })?;
    let secrets = gucs::secrets();
    let reply = wait_interruptibly(move || post(&target, purpose, &body))?;
    openai::parse_reply(&reply).map_err(|e| scrub_error(e, &secrets))
}

fn scrub_error(e: Error, secrets: &[String]) -> Error {
    let s: Vec<&str> = secrets.iter().map(String::as_str).collect();
    match e {
        Error::GatewayBadReply { detail } => Error::GatewayBadReply { detail: scrub(&detail, &s) },
        other => other,
    }
}

/// Runs on the helper thread: HTTP and bytes only.
fn post(target: &Target, purpose: Purpose, body: &[u8]) -> Result<Vec<u8>> {
    let mut req = agent()
        .post(&target.url)
        .timeout(target.timeout)
        .set("Content-Type", "application/json")
        .set("X-Sqlchat-Purpose", purpose.as_str());
    if let Some(a) = &target.authorization {
        req = req.set("Authorization", a);
    }
    let timeout_ms = target.timeout.as_millis() as u64;
    match req.send_bytes(body) {
        Ok(resp) if (200..300).contains(&resp.status()) => read_body(resp, MAX_REPLY_BYTES, timeout_ms),
        Ok(resp) => {
            let status = resp.status();
            let location = resp.header("Location").unwrap_or("").to_string();
            Err(Error::GatewayStatus {
                status,
                body: if location.is_empty() { String::new() } else { format!("redirect to {location} (not followed)") },
            })
        }
        Err(ureq::Error::Status(status, resp)) => {
            let body = read_body(resp, 64 * 1024, timeout_ms).unwrap_or_default();
            let body = openai::error_message(&String::from_utf8_lossy(&body));
            Err(match status {
                401 | 403 => Error::GatewayAuth { status, body },
                429 => Error::GatewayRateLimited { body },
                _ => Error::GatewayStatus { status, body },
            })
        }
        Err(ureq::Error::Transport(t)) => Err(transport_error(&t, timeout_ms)),
    }
}

fn transport_error(t: &ureq::Transport, timeout_ms: u64) -> Error {
    use ureq::ErrorKind;
    let detail = t.to_string();
    match t.kind() {
        ErrorKind::Dns | ErrorKind::ConnectionFailed | ErrorKind::InvalidUrl | ErrorKind::UnknownScheme => {
            Error::GatewayUnreachable { detail }
        }
        ErrorKind::Io if is_timeout(&detail) => Error::GatewayTimeout { timeout_ms },
        _ => Error::GatewayConnectionLost { detail },
    }
}

fn is_timeout(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("timed out") || t.contains("timeout") || t.contains("would block")
}

fn read_body(resp: ureq::Response, limit: usize, timeout_ms: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    resp.into_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| {
            if is_timeout(&e.to_string()) {
                Error::GatewayTimeout { timeout_ms }
            } else {
                Error::GatewayConnectionLost { detail: e.to_string() }
            }
        })?;
    if buf.len() > limit {
        return Err(Error::GatewayReplyTooLarge { limit });
    }
    Ok(buf)
}

/// Runs `work` on a helper thread (all signals blocked there) and waits for it on the backend's
/// latch plus a socket the helper writes to when done, so the reply wakes the backend at once and
/// an interrupt ends the wait at once. The helper never calls PostgreSQL.
fn wait_interruptibly<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let (mut done_tx, done_rx) = UnixStream::pair().map_err(|e| Error::Internal { detail: e.to_string() })?;
    let slot: Arc<Mutex<Option<Result<T>>>> = Arc::new(Mutex::new(None));
    let helper_slot = Arc::clone(&slot);

    let spawned = with_signals_blocked(|| {
        std::thread::Builder::new().name("sqlchat-http".into()).spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(Error::Internal { detail: "the HTTP helper thread panicked".into() }));
            if let Ok(mut s) = helper_slot.lock() {
                *s = Some(result);
            }
            let _ = done_tx.write_all(&[1]);
        })
    });
    let handle = spawned.map_err(|e| Error::Internal { detail: format!("could not start the HTTP thread: {e}") })?;

    let fd = done_rx.as_raw_fd();
    loop {
        unsafe {
            pg_sys::WaitLatchOrSocket(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_SOCKET_READABLE | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                fd,
                1000,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        check_for_interrupts!();
        let ready = slot.lock().ok().and_then(|mut s| s.take());
        if let Some(result) = ready {
            let _ = handle.join();
            return result;
        }
    }
}

fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        r
    }
}
