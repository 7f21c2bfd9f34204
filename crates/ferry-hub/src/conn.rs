//! Connection hygiene: no connection lingers without purpose, and exhausting the hub's file
//! descriptors takes credentials.
//!
//! Why: a socket that sends nothing, or a header line every few seconds, used to stay open
//! for minutes; a few hundred of them took every file descriptor and `/healthz` stopped
//! answering. Two rules fix that, for HTTP/1, HTTP/2 and TLS alike:
//!
//! - **Idle timeout.** A connection with no request in progress for
//!   [`HubConfig::connection_idle_secs`] is closed: a connection that never completes its TLS
//!   handshake or its first request head, one that dribbles headers, and a keep-alive
//!   connection left unused. A request counts as in progress once it presented valid
//!   credentials, until its response body has been handed over, and bytes still draining to a
//!   slow client count as activity: long polls, uploads and downloads are never cut, while an
//!   anonymous request whose body never arrives (a stalled login) cannot hold a connection.
//!   A WebSocket (after `101`) is exempt: the agent channel has its own pings and closes
//!   silent sessions itself. Accepted sockets get TCP keepalive, so a vanished peer is
//!   noticed.
//! - **A cap on unauthenticated connections** ([`HubConfig::max_unauthenticated_connections`],
//!   by default a quarter of the open-file limit). A connection is unauthenticated until a
//!   request on it presents valid credentials. At the cap, the oldest idle unauthenticated
//!   connection is closed to make room; if none is idle, the new connection is refused.
//!   Attackers without credentials thus hold at most the cap, and a newcomer (a health check,
//!   an agent connecting) still gets in.
//!
//! How: an acceptor ([`Guard`]) registers each accepted TCP stream, wraps it ([`Guarded`]) so
//! that its reads fail once the connection is idle past the timeout or evicted, and wraps the
//! connection's service ([`Tracked`]) so that each request marks the connection busy until its
//! response body is done. The authorizing middleware calls [`ConnHandle::authenticated`].
//!
//! [`HubConfig::connection_idle_secs`]: crate::HubConfig::connection_idle_secs
//! [`HubConfig::max_unauthenticated_connections`]: crate::HubConfig::max_unauthenticated_connections

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use futures_util::future::{BoxFuture, Either, Ready};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Every connection the hub holds, and the two rules above.
pub struct Connections {
    idle: Duration,
    max_unauthenticated: usize,
    registry: Mutex<Registry>,
    pub open: AtomicI64,
    pub unauthenticated: AtomicI64,
    pub closed_idle: AtomicU64,
    pub evicted: AtomicU64,
    pub refused: AtomicU64,
}

#[derive(Default)]
struct Registry {
    next: u64,
    /// Unauthenticated connections, oldest first.
    unauthenticated: BTreeMap<u64, Weak<Conn>>,
}

impl Connections {
    pub fn new(idle: Duration, max_unauthenticated: usize) -> Arc<Self> {
        Arc::new(Connections {
            idle,
            max_unauthenticated: max_unauthenticated.max(1),
            registry: Mutex::new(Registry::default()),
            open: AtomicI64::new(0),
            unauthenticated: AtomicI64::new(0),
            closed_idle: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, making room at the cap; `None` refuses it.
    fn admit(self: &Arc<Self>) -> Option<Arc<Conn>> {
        let mut registry = self.registry();
        if registry.unauthenticated.len() >= self.max_unauthenticated {
            let victim = registry
                .unauthenticated
                .values()
                .filter_map(Weak::upgrade)
                .find(|c| c.is_idle());
            match victim {
                Some(victim) => {
                    registry.unauthenticated.remove(&victim.id);
                    self.unauthenticated.fetch_sub(1, Ordering::Relaxed);
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                    victim.kill();
                }
                None => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        registry.next += 1;
        let conn = Arc::new(Conn {
            id: registry.next,
            owner: Arc::downgrade(self),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now_ms()),
            exempt: AtomicBool::new(false),
            authenticated: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            parked_busy: AtomicBool::new(false),
        });
        registry
            .unauthenticated
            .insert(conn.id, Arc::downgrade(&conn));
        self.open.fetch_add(1, Ordering::Relaxed);
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
        Some(conn)
    }

    /// The connection gauges and counters, in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        let g = |v: &AtomicI64| v.load(Ordering::Relaxed);
        let c = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP ferry_connections_open Connections open.\n# TYPE ferry_connections_open gauge\nferry_connections_open {}\n\
             # HELP ferry_connections_unauthenticated Open connections that have not yet presented valid credentials.\n# TYPE ferry_connections_unauthenticated gauge\nferry_connections_unauthenticated {}\n\
             # HELP ferry_connections_closed_idle_total Connections closed for being idle.\n# TYPE ferry_connections_closed_idle_total counter\nferry_connections_closed_idle_total {}\n\
             # HELP ferry_connections_evicted_total Idle unauthenticated connections closed to make room at the cap.\n# TYPE ferry_connections_evicted_total counter\nferry_connections_evicted_total {}\n\
             # HELP ferry_connections_refused_total Connections refused at the unauthenticated cap.\n# TYPE ferry_connections_refused_total counter\nferry_connections_refused_total {}\n",
            g(&self.open),
            g(&self.unauthenticated),
            c(&self.closed_idle),
            c(&self.evicted),
            c(&self.refused),
        )
    }

    fn forget(&self, id: u64) {
        if self.registry().unauthenticated.remove(&id).is_some() {
            self.unauthenticated.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One accepted connection's state.
pub struct Conn {
    id: u64,
    owner: Weak<Connections>,
    in_flight: AtomicU32,
    /// When the last request ended (or the connection opened), in [`now_ms`] units.
    idle_since: AtomicU64,
    exempt: AtomicBool,
    authenticated: AtomicBool,
    killed: AtomicBool,
    /// The task reading the connection, to wake when the rules change its fate.
    waker: AtomicWaker,
    /// The reader parked without a timer while a request was in progress: the request's end
    /// must wake it to arm one (otherwise the end needs no wake-up).
    parked_busy: AtomicBool,
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.exempt.load(Ordering::Acquire)
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    // `end` and the reader's park (`Guarded::must_close`) each write one flag and then read
    // the other's: sequentially consistent, so that at least one of them sees the other and
    // the reader is never left parked without a timer.
    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle_since.store(now_ms(), Ordering::SeqCst);
            // The reader may be parked without a timer (a request was in progress): wake it
            // so that it arms one.
            if self.parked_busy.swap(false, Ordering::SeqCst) {
                self.waker.wake();
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.forget(self.id);
            owner.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The connection a request came on, in its extensions.
#[derive(Clone)]
pub struct ConnHandle {
    conn: Arc<Conn>,
    /// Whether the request carrying this handle counts as busy (see `InFlight`).
    counted: Arc<AtomicBool>,
}

impl ConnHandle {
    /// A request on this connection presented valid credentials: the connection no longer
    /// counts against the unauthenticated cap, and this request now counts as busy (a long
    /// poll or an upload is not idle).
    pub fn authenticated(&self) {
        if !self.counted.swap(true, Ordering::AcqRel) {
            self.conn.begin();
        }
        if !self.conn.authenticated.swap(true, Ordering::AcqRel)
            && let Some(owner) = self.conn.owner.upgrade()
        {
            owner.forget(self.conn.id);
        }
    }
}

/// Milliseconds since the first call, on tokio's clock.
fn now_ms() -> u64 {
    start().elapsed().as_millis() as u64
}

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

// ----- the acceptor -------------------------------------------------------------------------

/// Registers accepted connections (see the module docs), then hands them to `inner` (the TLS
/// acceptor sits outside it, so the handshake is already under the idle rule).
#[derive(Clone)]
pub struct Guard<A> {
    connections: Arc<Connections>,
    inner: A,
}

impl<A> Guard<A> {
    pub fn new(connections: Arc<Connections>, inner: A) -> Self {
        Guard { connections, inner }
    }
}

impl<A, S> axum_server::accept::Accept<tokio::net::TcpStream, S> for Guard<A>
where
    A: axum_server::accept::Accept<Guarded<tokio::net::TcpStream>, Tracked<S>>,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Either<A::Future, Ready<io::Result<(A::Stream, A::Service)>>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        // A peer that vanished without a word (a laptop asleep, NAT state dropped) is noticed
        // in about two minutes rather than never: a request stuck reading its body then ends
        // and releases what it held (an upload's lock, a body slot).
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(10));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        match self.connections.admit() {
            Some(conn) => {
                let idle = self.connections.idle;
                let stream = Guarded {
                    inner: stream,
                    conn: conn.clone(),
                    idle,
                    timer: None,
                };
                let service = Tracked {
                    inner: service,
                    conn,
                };
                Either::Left(self.inner.accept(stream, service))
            }
            None => Either::Right(futures_util::future::ready(Err(io::Error::other(
                "too many unauthenticated connections",
            )))),
        }
    }
}

// ----- the stream ---------------------------------------------------------------------------

/// A connection's byte stream under the idle rule: reads fail once it has had no request in
/// progress for the idle timeout, or once it was evicted.
pub struct Guarded<I> {
    inner: I,
    conn: Arc<Conn>,
    idle: Duration,
    /// Armed only while idle; dropped for good once the connection is a WebSocket (ten
    /// thousand agent sessions need no timers of this kind).
    timer: Option<Pin<Box<Sleep>>>,
}

impl<I> Guarded<I> {
    /// Bytes leaving count as activity: a response the body has handed over may still be
    /// draining to a slow client when the request's busy mark ends.
    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = result
            && *n > 0
            && self.conn.in_flight.load(Ordering::Relaxed) == 0
        {
            self.conn.idle_since.store(now_ms(), Ordering::SeqCst);
        }
    }

    /// `Ready(error)` when the connection must close; otherwise arms the timer (registering
    /// the task to be woken at the deadline) and says `Pending`.
    fn must_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let conn = &self.conn;
        conn.waker.register(cx.waker());
        if conn.killed.load(Ordering::Acquire) {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room",
            ));
        }
        if conn.exempt.load(Ordering::Acquire) {
            self.timer = None;
            return Poll::Pending;
        }
        if !conn.is_idle() {
            conn.parked_busy.store(true, Ordering::SeqCst);
            // A request may have ended between the check and the flag: look again.
            if conn.in_flight.load(Ordering::SeqCst) == 0
                && conn.parked_busy.swap(false, Ordering::SeqCst)
            {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        let since = Duration::from_millis(conn.idle_since.load(Ordering::Acquire));
        let deadline = start() + since + self.idle;
        if Instant::now() >= deadline {
            conn.killed.store(true, Ordering::Release);
            if let Some(owner) = conn.owner.upgrade() {
                owner.closed_idle.fetch_add(1, Ordering::Relaxed);
            }
            return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "idle"));
        }
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            // The deadline passed between the check and the poll: look again next time.
            Poll::Ready(()) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(e) = self.must_close(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.conn.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&written);
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.conn.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// ----- the service --------------------------------------------------------------------------

/// A connection's service: marks the connection busy from each request's dispatch until its
/// response body is done, and tells handlers which connection they serve.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

/// A request's busy mark on its connection. A request counts as busy only once it is known
/// to come from someone with credentials (the connection was authenticated before, or this
/// request authenticates it): an anonymous request whose body never arrives must not keep a
/// connection out of the idle rule and the eviction. Ends when dropped: after the response
/// body, or on cancellation.
struct InFlight {
    conn: Arc<Conn>,
    counted: Arc<AtomicBool>,
}

impl InFlight {
    fn start(conn: &Arc<Conn>) -> Self {
        let counted = conn.authenticated.load(Ordering::Acquire);
        if counted {
            conn.begin();
        }
        InFlight {
            conn: conn.clone(),
            counted: Arc::new(AtomicBool::new(counted)),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.counted.load(Ordering::Acquire) {
            self.conn.end();
        }
    }
}

impl<S, B> tower_service::Service<Request<B>> for Tracked<S>
where
    S: tower_service::Service<Request<B>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let busy = InFlight::start(&self.conn);
        request.extensions_mut().insert(ConnHandle {
            conn: self.conn.clone(),
            counted: busy.counted.clone(),
        });
        let conn = self.conn.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                conn.exempt.store(true, Ordering::Release);
                conn.waker.wake();
            }
            Ok(response.map(|body| {
                Body::new(BusyBody {
                    inner: body,
                    _busy: busy,
                })
            }))
        })
    }
}

/// A response body that keeps its connection marked busy until it is done.
struct BusyBody {
    inner: Body,
    _busy: InFlight,
}

impl http_body::Body for BusyBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The default cap on unauthenticated connections: a quarter of the open-file limit, at least
/// 64.
pub fn default_max_unauthenticated() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: getrlimit only writes the struct we pass.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            #[allow(clippy::unnecessary_cast)]
            let files = lim.rlim_cur as u64;
            return usize::try_from(files / 4).unwrap_or(usize::MAX).max(64);
        }
    }
    1024
}
