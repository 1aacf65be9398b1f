//! The gateway client. Each HTTP attempt runs on a helper thread (all signals blocked; it never
//! calls PostgreSQL) over a socket sqlchat owns, while the backend sleeps on its latch and a
//! wake-up socket the helper writes to when done. The reply wakes the backend at once; an
//! interrupt (Ctrl-C, pg_cancel_backend, statement_timeout: 57014; pg_terminate_backend: 57P01)
//! ends the wait at once, and unwinding shuts the gateway socket down so the gateway stops
//! generating. Retries with back-off and the fallback models are driven from the backend, so the
//! back-off sleep is an interruptible latch wait too.

use crate::gucs;
use pgrx::pg_sys;
use pgrx::prelude::*;
use rustls::pki_types::ServerName;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sqlchat_core::error::{scrub, Error, Result};
use sqlchat_core::http::{self, HttpError};
use sqlchat_core::openai::{self, Message, Purpose};
use sqlchat_core::retry;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest reply body read from the gateway.
pub const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;
/// Largest error body kept for a message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Each attempt ends this long after the statement's own deadline, so that when both apply
/// PostgreSQL's statement_timeout fires first and the caller gets its 57014.
const STATEMENT_MARGIN: Duration = Duration::from_millis(250);
/// How long an interrupted wait lets the helper finish after its socket is shut down before it
/// is left to end alone (it can only still be blocked in name resolution).
const JOIN_GRACE_MS: i32 = 200;

/// Where and how to call the gateway, read from the settings on the backend's thread.
#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    path: String,
    host_header: String,
    loopback_only: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    authorization: Option<String>,
    request_timeout: Duration,
}

fn target() -> Result<Target> {
    let base = gucs::api_base().ok_or(Error::NotConfigured)?;
    let url = url::Url::parse(&format!("{base}/chat/completions")).map_err(|e| Error::InvalidArgument {
        what: format!("sqlchat.api_base is not a valid URL ({e})"),
        hint: "For example: ALTER SYSTEM SET sqlchat.api_base = 'https://api.openai.com/v1'; SELECT pg_reload_conf();".into(),
    })?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(bad_scheme()),
    };
    let loopback = is_loopback_name(&host);
    let tls = match url.scheme() {
        "https" => Some(tls_config()?),
        // Plain http only to this machine: a key must not cross a network in clear text.
        "http" if loopback => None,
        "http" => {
            return Err(Error::InvalidArgument {
                what: "sqlchat.api_base must use https:// unless the gateway is on this machine".into(),
                hint: "Use an https:// URL, or a loopback address (127.0.0.1, localhost) for a local gateway.".into(),
            })
        }
        _ => return Err(bad_scheme()),
    };
    let port = url.port_or_known_default().ok_or_else(bad_scheme)?;
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path = format!("{path}?{q}");
    }
    let host_header = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
        None => url.host_str().unwrap_or(&host).to_string(),
    };
    let authorization = gucs::auth_header().or_else(|| gucs::api_key().map(|k| format!("Bearer {k}")));
    Ok(Target {
        host,
        port,
        path,
        host_header,
        loopback_only: tls.is_none(),
        tls,
        authorization,
        request_timeout: Duration::from_millis(gucs::request_timeout_ms()),
    })
}

fn bad_scheme() -> Error {
    Error::InvalidArgument {
        what: "sqlchat.api_base must be an http:// or https:// URL with a host".into(),
        hint: "For example: ALTER SYSTEM SET sqlchat.api_base = 'https://api.openai.com/v1'; SELECT pg_reload_conf();".into(),
    }
}

fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().map(|a| a.is_loopback()).unwrap_or(false)
}

/// TLS settings: the system's roots plus, when a superuser set sqlchat.ca_file, that file's
/// certificates; built once per backend and per CA file.
fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
    static CONFIG: Mutex<Option<(Option<String>, Arc<rustls::ClientConfig>)>> = Mutex::new(None);
    let ca_file = gucs::ca_file();
    let mut cached = lock(&CONFIG);
    if let Some((file, config)) = cached.as_ref() {
        if *file == ca_file {
            return Ok(Arc::clone(config));
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(native) = rustls_native_certs::load_native_certs() {
        roots.add_parsable_certificates(native);
    }
    if let Some(path) = &ca_file {
        let bad = |why: String| Error::InvalidArgument {
            what: format!("sqlchat.ca_file could not be used: {why}"),
            hint: "Point sqlchat.ca_file at a readable PEM file of CA certificates, or reset it to use the system's roots only.".into(),
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut io::BufReader::new(file))
            .collect::<io::Result<_>>()
            .map_err(|e| bad(e.to_string()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("it holds no PEM certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal { detail: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    *cached = Some((ca_file, Arc::clone(&config)));
    Ok(config)
}

/// One chat call: the configured model with bounded retries, then each fallback model in turn.
pub fn chat(purpose: Purpose, messages: &[Message], temperature: f64) -> Result<String> {
    let target = target()?;
    let secrets = gucs::secrets();
    let mut models = vec![gucs::model()];
    for m in gucs::fallback_models() {
        if !models.contains(&m) {
            models.push(m);
        }
    }
    let retries = gucs::request_retries();
    let mut last = Error::Internal { detail: "no model to ask".into() };
    for model in &models {
        let body = serde_json::to_vec(&openai::request_body(model, messages, temperature))
            .map_err(|e| Error::Internal { detail: e.to_string() })?;
        let body = Arc::new(body);
        let mut attempt = 0u32;
        last = loop {
            attempt += 1;
            let (reply, retry_after) = call_once(&target, purpose, &body);
            let err = match reply.and_then(|b| openai::parse_reply(&b)) {
                Ok(text) => return Ok(text),
                Err(e) => e,
            };
            if attempt > retries || !retry::is_retryable(&err) {
                break err;
            }
            let pause = retry::backoff(attempt, retry_after, jitter());
            // Honour a server's pause only within the time this call still has.
            let left = statement_left().map_or(target.request_timeout, |l| l.min(target.request_timeout));
            if pause >= left {
                break err;
            }
            sleep_interruptibly(pause);
        };
        if !retry::falls_back(&last) {
            break;
        }
    }
    Err(scrub_error(last, &secrets))
}

fn scrub_error(e: Error, secrets: &[String]) -> Error {
    let s: Vec<&str> = secrets.iter().map(String::as_str).collect();
    match e {
        Error::GatewayBadReply { detail } => Error::GatewayBadReply { detail: scrub(&detail, &s) },
        Error::GatewayAuth { status, body } => Error::GatewayAuth { status, body: scrub(&body, &s) },
        Error::GatewayRateLimited { body } => Error::GatewayRateLimited { body: scrub(&body, &s) },
        Error::GatewayStatus { status, body } => Error::GatewayStatus { status, body: scrub(&body, &s) },
        other => other,
    }
}

/// Time left before the statement's statement_timeout, when one is set.
fn statement_left() -> Option<Duration> {
    let timeout_ms = unsafe { pg_sys::StatementTimeout };
    if timeout_ms <= 0 {
        return None;
    }
    let (start, now) = unsafe { (pg_sys::GetCurrentStatementStartTimestamp(), pg_sys::GetCurrentTimestamp()) };
    let left_us = start.saturating_add(i64::from(timeout_ms) * 1000).saturating_sub(now);
    Some(Duration::from_micros(left_us.max(0) as u64))
}

/// A number in [0, 1) for back-off jitter (xorshift seeded from the clock and the process).
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        x = nanos ^ (u64::from(std::process::id()) << 32) | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Sleeps on the latch, so an interrupt ends the pause at once.
fn sleep_interruptibly(pause: Duration) {
    let until = Instant::now() + pause;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                left.as_millis().clamp(1, i32::MAX as u128) as std::ffi::c_long,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        check_for_interrupts!();
    }
}

/// The reply body of one attempt (or its error) and the server's Retry-After, if any.
type Attempt = (Result<Vec<u8>>, Option<Duration>);

/// What the backend and the helper share: whether the call was abandoned, and a handle to the
/// gateway socket so the backend can shut it down.
#[derive(Default)]
struct Shared {
    abandoned: bool,
    socket: Option<Socket>,
    outcome: Option<Attempt>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One attempt on a helper thread, waited for on the latch and the helper's wake-up socket.
fn call_once(target: &Target, purpose: Purpose, body: &Arc<Vec<u8>>) -> Attempt {
    let budget = statement_left().map_or(target.request_timeout, |l| (l + STATEMENT_MARGIN).min(target.request_timeout));
    let deadline = Instant::now() + budget;
    let timeout_ms = budget.as_millis() as u64;
    let (mut done_tx, done_rx) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => return (Err(Error::Internal { detail: format!("could not create a socket pair: {e}") }), None),
    };
    let shared = Arc::new(Mutex::new(Shared::default()));
    let helper_shared = Arc::clone(&shared);
    let helper_target = target.clone();
    let helper_body = Arc::clone(body);
    let spawned = with_signals_blocked(|| {
        std::thread::Builder::new().name("sqlchat-http".into()).spawn(move || {
            let run = || exchange(&helper_target, purpose, &helper_body, deadline, timeout_ms, &helper_shared);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                .unwrap_or_else(|_| (Err(Error::Internal { detail: "the HTTP helper thread panicked".into() }), None));
            let mut s = lock(&helper_shared);
            s.socket = None;
            s.outcome = Some(outcome);
            drop(s);
            let _ = done_tx.write_all(&[1]);
        })
    });
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => return (Err(Error::Internal { detail: format!("could not start the HTTP thread: {e}") }), None),
    };
    // Dropped on every way out, including the unwinding of an ERROR raised by an interrupt.
    let mut guard = HelperGuard { shared, done_rx, handle: Some(handle) };
    let fd = guard.done_rx.as_raw_fd();
    loop {
        // Normally the helper ends by the deadline; the grace covers a helper stuck in name
        // resolution, which no socket shutdown can end.
        let wait_ms = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        let rc = unsafe {
            let rc = pg_sys::WaitLatchOrSocket(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_SOCKET_READABLE | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                fd,
                wait_ms.as_millis().clamp(1, 1000) as std::ffi::c_long,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
            rc
        };
        check_for_interrupts!();
        let outcome = lock(&guard.shared).outcome.take();
        if let Some(outcome) = outcome {
            if let Some(h) = guard.handle.take() {
                let _ = h.join();
            }
            return outcome;
        }
        if rc & pg_sys::WL_TIMEOUT as i32 != 0 && Instant::now() > deadline + Duration::from_secs(1) {
            return (Err(Error::GatewayTimeout { timeout_ms }), None);
        }
    }
}

/// Ends an abandoned attempt: marks it, shuts the socket down (the gateway sees the client go
/// away), and joins the helper, which then returns at once from any blocked read, write or
/// connect.
struct HelperGuard {
    shared: Arc<Mutex<Shared>>,
    done_rx: UnixStream,
    handle: Option<JoinHandle<()>>,
}

impl Drop for HelperGuard {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else { return };
        {
            let mut s = lock(&self.shared);
            s.abandoned = true;
            if let Some(sock) = s.socket.take() {
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
        let mut pfd = libc::pollfd { fd: self.done_rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ready = unsafe { libc::poll(&mut pfd, 1, JOIN_GRACE_MS) } > 0;
        if ready || handle.is_finished() {
            let _ = handle.join();
        }
    }
}

/// Runs on the helper thread: sockets, TLS and bytes only.
fn exchange(target: &Target, purpose: Purpose, body: &[u8], deadline: Instant, timeout_ms: u64, shared: &Mutex<Shared>) -> Attempt {
    let stream = match connect(target, deadline, timeout_ms, shared) {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    let mut headers = vec![("Content-Type", "application/json"), ("Accept", "application/json"), ("X-Sqlchat-Purpose", purpose.as_str())];
    let user_agent = concat!("sqlchat/", env!("CARGO_PKG_VERSION"));
    headers.push(("User-Agent", user_agent));
    if let Some(a) = &target.authorization {
        headers.push(("Authorization", a));
    }
    let request = http::post_request(&target.host_header, &target.path, &headers, body);
    let io = DeadlineStream { tcp: stream, deadline };
    let result = match &target.tls {
        None => send_and_read(io, &request),
        Some(config) => {
            let name = match ServerName::try_from(target.host.clone()) {
                Ok(n) => n,
                Err(e) => return (Err(Error::GatewayTls { detail: e.to_string() }), None),
            };
            match rustls::ClientConnection::new(Arc::clone(config), name) {
                Ok(conn) => send_and_read(rustls::StreamOwned::new(conn, io), &request),
                Err(e) => Err(HttpError::Io(io::Error::other(e))),
            }
        }
    };
    let response = match result {
        Ok(r) => r,
        Err(e) => return (Err(http_error(e, timeout_ms)), None),
    };
    let retry_after = response.header("Retry-After").and_then(|v| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        retry::parse_retry_after(v, now)
    });
    if (200..300).contains(&response.status) {
        return (Ok(response.body), retry_after);
    }
    let text = String::from_utf8_lossy(&response.body[..response.body.len().min(MAX_ERROR_BODY)]).into_owned();
    (Err(openai::status_error(response.status, &text, response.header("Location"))), retry_after)
}

fn send_and_read<S: Read + Write>(mut s: S, request: &[u8]) -> std::result::Result<http::Response, HttpError> {
    s.write_all(request)?;
    s.flush()?;
    http::read_response(&mut s, MAX_REPLY_BYTES)
}

/// Resolves and connects, registering each socket before its connect so a cancel can end it.
fn connect(target: &Target, deadline: Instant, timeout_ms: u64, shared: &Mutex<Shared>) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| Error::GatewayUnreachable { detail: format!("cannot resolve {}: {e}", target.host) })?
        .filter(|a| !target.loopback_only || a.ip().is_loopback())
        .collect();
    if addrs.is_empty() {
        return Err(Error::GatewayUnreachable { detail: format!("{} has no usable address", target.host) });
    }
    let mut last = String::new();
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::GatewayTimeout { timeout_ms });
        }
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| Error::GatewayUnreachable { detail: e.to_string() })?;
        {
            let mut s = lock(shared);
            if s.abandoned {
                return Err(Error::Internal { detail: "abandoned".into() });
            }
            s.socket = socket.try_clone().ok();
        }
        match socket.connect_timeout(&SockAddr::from(addr), left) {
            Ok(()) => {
                let _ = socket.set_tcp_nodelay(true);
                return Ok(socket.into());
            }
            Err(e) if is_timeout(&e) => return Err(Error::GatewayTimeout { timeout_ms }),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(Error::GatewayUnreachable { detail: last })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

fn http_error(e: HttpError, timeout_ms: u64) -> Error {
    match e {
        HttpError::Io(e) if is_timeout(&e) => Error::GatewayTimeout { timeout_ms },
        HttpError::Io(e) => match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => Error::GatewayTls { detail: tls.to_string() },
            None => Error::GatewayConnectionLost { detail: e.to_string() },
        },
        HttpError::Truncated => Error::GatewayConnectionLost { detail: "the connection closed before the reply was complete".into() },
        HttpError::TooLarge { limit } => Error::GatewayReplyTooLarge { limit },
        HttpError::Malformed(detail) => Error::GatewayBadReply { detail },
    }
}

/// A TCP stream whose every read and write ends by one deadline, so a reply trickled a byte at
/// a time cannot outlast it.
struct DeadlineStream {
    tcp: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline reached"))
        } else {
            Ok(left)
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_write_timeout(Some(left))?;
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
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
