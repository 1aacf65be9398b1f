//! The gateway client. Each HTTP attempt runs through ureq on a helper thread (all signals
//! blocked; it never calls PostgreSQL) over a socket sqlchat's own connector opens, while the
//! backend sleeps on its latch and a wake-up socket the helper writes to when done. The reply
//! wakes the backend at once; an interrupt (Ctrl-C, pg_cancel_backend, statement_timeout: 57014;
//! pg_terminate_backend: 57P01) ends the wait at once, and unwinding shuts the gateway socket
//! down so the gateway stops generating. Retries with back-off and the fallback models are
//! driven from the backend, so the back-off sleep is an interruptible latch wait too.

use crate::gucs;
use pgrx::pg_sys;
use pgrx::prelude::*;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sqlchat_core::error::{Error, Result};
use sqlchat_core::openai::{self, Message, Purpose};
use sqlchat_core::retry;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector, Transport,
};
use ureq::Agent;

/// Largest reply body read from the gateway.
pub const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;
/// Largest error body kept for a message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest response head (status line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// ureq's output buffer: the request head must fit in it (the body is sent through it in pieces).
const OUTPUT_BUFFER: usize = 16 * 1024;
/// Longest Authorization value, so that the request head fits in the output buffer.
const MAX_AUTHORIZATION: usize = 8 * 1024;
/// Each attempt ends this long after the statement's own deadline, so that when both apply
/// PostgreSQL's statement_timeout fires first and the caller gets its 57014.
const STATEMENT_MARGIN: Duration = Duration::from_millis(250);
/// How long an interrupted wait lets the helper finish after its socket is shut down before it
/// is left to end alone (it can only still be blocked in name resolution).
const JOIN_GRACE_MS: i32 = 200;

/// Where and how to call the gateway, read from the settings on the backend's thread.
#[derive(Clone)]
struct Target {
    url: String,
    /// `{api_base}/models`, asked by check_setup.
    models_url: String,
    host: String,
    port: u16,
    loopback_only: bool,
    tls: Option<Tls>,
    authorization: Option<String>,
    request_timeout: Duration,
    /// What finds the configured secrets in a reply (a gateway may echo the key into it).
    secrets: Arc<sqlchat_core::error::Secrets>,
}

/// TLS for one CA setting: ureq's settings and its rustls connector, which builds the rustls
/// configuration once and keeps it.
#[derive(Clone)]
struct Tls {
    config: TlsConfig,
    connector: Arc<RustlsConnector>,
}

fn target() -> Result<Target> {
    let base = gucs::api_base().ok_or(Error::NotConfigured)?;
    let mut url = url::Url::parse(&format!("{base}/chat/completions")).map_err(|e| Error::InvalidArgument {
        what: format!("sqlchat.api_base is not a valid URL ({e})"),
        hint: "For example: ALTER SYSTEM SET sqlchat.api_base = 'https://api.openai.com/v1'; SELECT pg_reload_conf();"
            .into(),
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
    // Credentials in the URL are not sent (ureq would send them as Basic auth): the key travels
    // only as sqlchat.api_key or sqlchat.auth_header.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let credential = match gucs::auth_header()? {
        Some(header) => Some(header),
        None => gucs::api_key()?.map(|k| format!("Bearer {k}")),
    };
    let authorization = match credential {
        // A header value never carries a line break into the request.
        Some(a) => Some(header_value(a.chars().filter(|c| *c != '\r' && *c != '\n').collect())?),
        None => None,
    };
    let models_url = url.as_str().trim_end_matches("/chat/completions").to_string() + "/models";
    Ok(Target {
        url: url.to_string(),
        models_url,
        host,
        port,
        loopback_only: tls.is_none(),
        tls,
        authorization,
        request_timeout: Duration::from_millis(gucs::request_timeout_ms()),
        secrets: crate::error::secrets(),
    })
}

fn bad_scheme() -> Error {
    Error::InvalidArgument {
        what: "sqlchat.api_base must be an http:// or https:// URL with a host".into(),
        hint: "For example: ALTER SYSTEM SET sqlchat.api_base = 'https://api.openai.com/v1'; SELECT pg_reload_conf();"
            .into(),
    }
}

/// The Authorization value, refused here (without echoing it) when HTTP cannot carry it.
fn header_value(v: String) -> Result<String> {
    if v.len() > MAX_AUTHORIZATION {
        return Err(Error::InvalidArgument {
            what: format!("sqlchat.api_key or sqlchat.auth_header is longer than {MAX_AUTHORIZATION} bytes"),
            hint: "Set the key the gateway issued, without anything around it.".into(),
        });
    }
    if ureq::http::HeaderValue::from_str(&v).is_ok() {
        return Ok(v);
    }
    Err(Error::InvalidArgument {
        what: "sqlchat.api_key or sqlchat.auth_header holds characters an HTTP header cannot carry".into(),
        hint: "Set the key again without control characters.".into(),
    })
}

fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().map(|a| a.is_loopback()).unwrap_or(false)
}

/// TLS settings: the system's roots plus, when a superuser set sqlchat.ca_file, that file's
/// certificates; built once per backend and per CA file.
fn tls_config() -> Result<Tls> {
    static CONFIG: Mutex<Option<(Option<String>, Tls)>> = Mutex::new(None);
    let ca_file = gucs::ca_file();
    let mut cached = lock(&CONFIG);
    if let Some((file, tls)) = cached.as_ref() {
        if *file == ca_file {
            return Ok(tls.clone());
        }
    }
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    // A system store that cannot be read in part still gives the roots it could read.
    let native = rustls_native_certs::load_native_certs();
    roots.extend(native.certs.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()));
    if let Some(path) = &ca_file {
        let bad = |why: String| {
            Error::InvalidArgument {
            what: format!("sqlchat.ca_file could not be used: {why}"),
            hint: "Point sqlchat.ca_file at a readable PEM file of CA certificates, or reset it to use the system's roots only.".into(),
        }
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut extra = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let PemItem::Certificate(c) = item.map_err(|e| bad(e.to_string()))? {
                extra.push(c);
            }
        }
        // Counted as rustls will take them: a block that is no certificate is not a root.
        let (added, _) = rustls::RootCertStore::empty()
            .add_parsable_certificates(extra.iter().map(|c| rustls::pki_types::CertificateDer::from(c.der())));
        if added == 0 {
            return Err(bad("it holds no PEM certificate".into()));
        }
        roots.extend(extra);
    }
    let config = TlsConfig::builder()
        .root_certs(RootCerts::from(roots))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    let tls = Tls { config, connector: Arc::new(RustlsConnector::default()) };
    *cached = Some((ca_file, tls.clone()));
    Ok(tls)
}

/// Whether the gateway settings can be used, as the first call would find.
pub fn check_settings() -> Result<()> {
    target().map(|_| ())
}

/// The gateway's model names (GET {api_base}/models), within five seconds, no retries.
pub fn list_models() -> Result<Vec<String>> {
    let mut target = target()?;
    target.request_timeout = target.request_timeout.min(Duration::from_secs(5));
    let (reply, _) = call_once(&target, Purpose::CheckSetup, &Arc::new(Vec::new()));
    reply.map(|names| names.text.lines().map(str::to_string).collect())
}

/// One chat call: the configured model with bounded retries, then each fallback model in turn.
pub fn chat(purpose: Purpose, messages: &[Message], temperature: f64) -> Result<String> {
    let target = target()?;
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
            crate::ops::progress::waiting_for_model(model, purpose);
            let sent = Instant::now();
            let (reply, retry_after) = call_once(&target, purpose, &body);
            crate::ops::meter::gateway_request(purpose, sent.elapsed(), messages, reply.as_ref().ok());
            let err = match reply {
                Ok(completion) => {
                    crate::ops::progress::notice(&format!("the model {model} replied"));
                    return Ok(completion.text);
                }
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
    // Its texts are scrubbed, whole, where they are shown (crate::error).
    Err(last)
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
                crate::compat::gateway_wait_event(),
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        check_for_interrupts!();
    }
}

/// The reply's text of one attempt (or its error) and the server's Retry-After, if any.
type Attempt = (Result<openai::Completion>, Option<Duration>);

/// What the backend and the helper share: whether the call was abandoned, and a handle to the
/// gateway socket so the backend can shut it down.
#[derive(Default)]
struct Shared {
    abandoned: bool,
    /// The body is read and being parsed: no socket left to shut down, and nothing to wait for.
    parsing: bool,
    socket: Option<Socket>,
    outcome: Option<Attempt>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One attempt on a helper thread, waited for on the latch and the helper's wake-up socket.
fn call_once(target: &Target, purpose: Purpose, body: &Arc<Vec<u8>>) -> Attempt {
    let budget =
        statement_left().map_or(target.request_timeout, |l| (l + STATEMENT_MARGIN).min(target.request_timeout));
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
                (pg_sys::WL_LATCH_SET | pg_sys::WL_SOCKET_READABLE | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH)
                    as i32,
                fd,
                wait_ms.as_millis().clamp(1, 1000) as std::ffi::c_long,
                crate::compat::gateway_wait_event(),
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
/// connect. A helper already parsing a body is left to finish alone: parsing touches nothing
/// but its own memory and ends in a time linear in the body, which is bounded.
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
            if s.parsing {
                return;
            }
        }
        let mut pfd = libc::pollfd { fd: self.done_rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ready = unsafe { libc::poll(&mut pfd, 1, JOIN_GRACE_MS) } > 0;
        if ready || handle.is_finished() {
            let _ = handle.join();
        }
    }
}

/// Runs on the helper thread: one POST through ureq, over a socket this module opens and
/// registers so that the backend can shut it down.
fn exchange(
    target: &Target,
    purpose: Purpose,
    body: &[u8],
    deadline: Instant,
    timeout_ms: u64,
    shared: &Arc<Mutex<Shared>>,
) -> Attempt {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return (Err(Error::GatewayTimeout { timeout_ms }), None);
    }
    let (tls_config, tls) = match &target.tls {
        Some(t) => (t.config.clone(), Arc::clone(&t.connector)),
        None => (TlsConfig::default(), Arc::new(RustlsConnector::default())),
    };
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(0)
        .max_response_header_size(MAX_HEAD_BYTES)
        // Room for the longest head read and a request head; ureq's 128 KiB defaults cost a
        // quarter megabyte of zeroing per call.
        .input_buffer_size(MAX_HEAD_BYTES)
        .output_buffer_size(OUTPUT_BUFFER)
        .user_agent(concat!("sqlchat/", env!("CARGO_PKG_VERSION")))
        .accept("application/json")
        .timeout_global(Some(left))
        .tls_config(tls_config)
        .build();
    let tcp = OwnedTcp { shared: Arc::clone(shared), deadline, timeout_ms };
    let resolver = Resolve { host: target.host.clone(), port: target.port, loopback_only: target.loopback_only };
    let agent = Agent::with_parts(config, tcp.chain(SharedTls(tls)), resolver);
    // Every attempt opens its own socket; nothing is kept for another call.
    let sent = if purpose == Purpose::CheckSetup {
        let mut request =
            agent.get(&target.models_url).header("X-Sqlchat-Purpose", purpose.as_str()).header("Connection", "close");
        if let Some(a) = &target.authorization {
            request = request.header("Authorization", a);
        }
        request.call()
    } else {
        let mut request = agent
            .post(&target.url)
            .header("Content-Type", "application/json")
            .header("X-Sqlchat-Purpose", purpose.as_str())
            .header("Connection", "close");
        if let Some(a) = &target.authorization {
            request = request.header("Authorization", a);
        }
        request.send(body)
    };
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => return (Err(gateway_error(e, timeout_ms)), None),
    };
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let retry_after = header("Retry-After").and_then(|v| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        retry::parse_retry_after(&v, now)
    });
    let status = response.status().as_u16();
    let location = header("Location");
    if (200..300).contains(&status) {
        let reply = response.body_mut().with_config().limit(MAX_REPLY_BYTES as u64).read_to_vec();
        // Parsed here rather than in the backend: a large body takes long to parse, and the
        // backend's wait stays interruptible meanwhile.
        let text = reply.map_err(|e| gateway_error(e, timeout_ms)).and_then(|body| {
            lock(shared).parsing = true;
            match purpose {
                // One model name a line.
                Purpose::CheckSetup => openai::parse_models(&body)
                    .map(|models| openai::Completion { text: models.join("\n"), usage: None }),
                // A gateway may echo the key into the reply: it never reaches an answer or a table.
                _ => openai::parse_completion(&body)
                    .map(|c| openai::Completion { text: target.secrets.scrub_configured(&c.text), ..c }),
            }
        });
        return (text, retry_after);
    }
    // Only the start of an error body is read: it becomes a message, not data.
    let mut text = Vec::new();
    if let Err(e) = response.body_mut().as_reader().take(MAX_ERROR_BODY as u64).read_to_end(&mut text) {
        return (Err(gateway_error(ureq::Error::from(e), timeout_ms)), retry_after);
    }
    let text = String::from_utf8_lossy(&text);
    (Err(openai::status_error(status, &text, location.as_deref())), retry_after)
}

/// ureq's errors as sqlchat's; errors raised by this module's connector and resolver travel
/// through ureq as `Other` and come back unchanged.
fn gateway_error(e: ureq::Error, timeout_ms: u64) -> Error {
    match e {
        ureq::Error::Other(inner) => match inner.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => Error::GatewayConnectionLost { detail: other.to_string() },
        },
        ureq::Error::Timeout(_) => Error::GatewayTimeout { timeout_ms },
        ureq::Error::Io(e) if is_timeout(&e) => Error::GatewayTimeout { timeout_ms },
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Error::GatewayConnectionLost { detail: "the connection closed before the reply was complete".into() }
        }
        ureq::Error::Io(e) => match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => Error::GatewayTls { detail: tls.to_string() },
            None => Error::GatewayConnectionLost { detail: e.to_string() },
        },
        ureq::Error::Rustls(e) => Error::GatewayTls { detail: e.to_string() },
        ureq::Error::Tls(e) => Error::GatewayTls { detail: e.to_string() },
        ureq::Error::BodyExceedsLimit(_) => Error::GatewayReplyTooLarge { limit: MAX_REPLY_BYTES },
        ureq::Error::LargeResponseHeader(..) => Error::GatewayReplyTooLarge { limit: MAX_HEAD_BYTES },
        other => Error::GatewayBadReply { detail: other.to_string() },
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

/// Resolves on the helper thread (no thread of its own) and keeps only loopback addresses for
/// a plain-http gateway.
struct Resolve {
    host: String,
    port: u16,
    loopback_only: bool,
}

impl Resolver for Resolve {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let found = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| ours(Error::GatewayUnreachable { detail: format!("cannot resolve {}: {e}", self.host) }))?;
        let mut addrs = self.empty();
        for addr in found.filter(|a| !self.loopback_only || a.ip().is_loopback()) {
            if addrs.try_push(addr).is_err() {
                break;
            }
        }
        if addrs.is_empty() {
            return Err(ours(Error::GatewayUnreachable { detail: format!("{} has no usable address", self.host) }));
        }
        Ok(addrs)
    }
}

impl fmt::Debug for Resolve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolve").field("host", &self.host).finish()
    }
}

fn ours(e: Error) -> ureq::Error {
    ureq::Error::Other(Box::new(e))
}

/// Opens the gateway socket itself, registering each socket in the shared state before its
/// connect, so that a cancel ends the connect, the TLS handshake and every read and write.
struct OwnedTcp {
    shared: Arc<Mutex<Shared>>,
    deadline: Instant,
    timeout_ms: u64,
}

impl Connector for OwnedTcp {
    type Out = OwnedTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> std::result::Result<Option<OwnedTransport>, ureq::Error> {
        let stream = connect(&details.addrs, self.deadline, self.timeout_ms, &self.shared).map_err(ours)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(OwnedTransport { stream, buffers }))
    }
}

impl fmt::Debug for OwnedTcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedTcp").finish()
    }
}

/// Tries each address until the deadline.
fn connect(addrs: &[SocketAddr], deadline: Instant, timeout_ms: u64, shared: &Mutex<Shared>) -> Result<TcpStream> {
    let mut last = String::new();
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::GatewayTimeout { timeout_ms });
        }
        let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| Error::GatewayUnreachable { detail: e.to_string() })?;
        {
            let mut s = lock(shared);
            if s.abandoned {
                return Err(Error::Internal { detail: "abandoned".into() });
            }
            s.socket = socket.try_clone().ok();
        }
        match socket.connect_timeout(&SockAddr::from(*addr), left) {
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

/// ureq's rustls connector, shared across calls so its rustls configuration is built once.
struct SharedTls(Arc<RustlsConnector>);

impl<In: Transport> Connector<In> for SharedTls {
    type Out = <RustlsConnector as Connector<In>>::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        self.0.connect(details, chained)
    }
}

impl fmt::Debug for SharedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedTls").finish()
    }
}

/// The gateway socket as a ureq transport: blocking reads and writes, each bounded by what is
/// left of ureq's timeout (the attempt's deadline), so a reply trickled a byte at a time cannot
/// outlast it.
struct OwnedTransport {
    stream: TcpStream,
    buffers: LazyBuffers,
}

/// The socket timeout for the next read or write; none left is ureq's timeout error.
fn io_timeout(t: NextTimeout) -> std::result::Result<Option<Duration>, ureq::Error> {
    if t.after.is_zero() {
        return Err(ureq::Error::Timeout(t.reason));
    }
    Ok(t.not_zero().map(|d| *d))
}

fn transport_error(e: io::Error, t: NextTimeout) -> ureq::Error {
    if is_timeout(&e) {
        ureq::Error::Timeout(t.reason)
    } else {
        ureq::Error::Io(e)
    }
}

impl Transport for OwnedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(io_timeout(timeout)?)?;
        let output = &self.buffers.output()[..amount];
        (&self.stream).write_all(output).map_err(|e| transport_error(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.set_read_timeout(io_timeout(timeout)?)?;
        let n = (&self.stream).read(self.buffers.input_append_buf()).map_err(|e| transport_error(e, timeout))?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    /// Never reused: each attempt has its own socket, registered for shutdown.
    fn is_open(&mut self) -> bool {
        false
    }
}

impl fmt::Debug for OwnedTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedTransport").field("peer", &self.stream.peer_addr().ok()).finish()
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
