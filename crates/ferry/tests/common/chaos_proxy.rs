//! A TCP forwarder that misbehaves on a seeded schedule: it sits between the clients
//! (connectors, agents) and the hub, and cuts some connections after a number of bytes (often
//! in the middle of a body) or stalls them for a few seconds, passing everything else through.
//!
//! Every accepted connection draws its fate from one seeded generator: nothing, a cut, or a
//! stall, in one direction, after a log-uniform number of bytes (so that short requests and
//! megabyte downloads are both hit mid-way). A cut closes both sides, half the time with a
//! reset. Faults can be switched off (a convergence phase), and are counted.
//!
//! The hub may be restarted on the same port: each new connection dials it afresh, and one
//! that finds it down is reset, as a refused connection would be.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How likely each connection is to be cut or stalled, and how far in; and how fast the link
/// is (slow enough that transfers are still under way when a fault or a kill comes).
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    pub cut: f64,
    pub stall: f64,
    /// The fault comes after 1 to this many bytes (log-uniform).
    pub max_offset: u64,
    /// A stall lasts 0.5 s to this long.
    pub max_stall: Duration,
    /// Each direction of each connection carries at most this many bytes a second (with or
    /// without faults).
    pub bytes_per_sec: Option<u64>,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            cut: 0.3,
            stall: 0.2,
            max_offset: 2 * 1024 * 1024,
            max_stall: Duration::from_secs(4),
            bytes_per_sec: Some(3 * 1024 * 1024),
        }
    }
}

/// What the proxy did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: u64,
    pub cuts: u64,
    pub stalls: u64,
    /// Connections that found the hub down.
    pub refused: u64,
}

pub struct ChaosProxy {
    /// `http://127.0.0.1:PORT`: give this to clients instead of the hub's URL.
    pub url: String,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

struct State {
    upstream: SocketAddr,
    faults: AtomicBool,
    rates: FaultRates,
    rng: Mutex<fastrand::Rng>,
    connections: AtomicU64,
    cuts: AtomicU64,
    stalls: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to hub (request bodies: uploads, results).
    Up,
    /// Hub to client (response bodies: downloads, jobs, operations).
    Down,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Cut { reset: bool },
    Stall(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    direction: Direction,
    after: u64,
    action: Action,
}

impl ChaosProxy {
    /// Listens on a free local port and forwards to `upstream` (`http://host:port` or
    /// `host:port`), with faults on.
    pub async fn start(upstream: &str, seed: u64, rates: FaultRates) -> ChaosProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the hub's address");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            upstream,
            faults: AtomicBool::new(true),
            rates,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let s = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move { serve(client, s).await });
            }
        });
        ChaosProxy { url, state, accept }
    }

    /// Turns fault injection on or off. Off also spares faults already planned for open
    /// connections (a stall under way runs out).
    pub fn set_faults(&self, on: bool) {
        self.state.faults.store(on, Ordering::SeqCst);
    }

    pub fn stats(&self) -> ProxyStats {
        let s = &self.state;
        ProxyStats {
            connections: s.connections.load(Ordering::SeqCst),
            cuts: s.cuts.load(Ordering::SeqCst),
            stalls: s.stalls.load(Ordering::SeqCst),
            refused: s.refused.load(Ordering::SeqCst),
        }
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl State {
    fn faults_on(&self) -> bool {
        self.faults.load(Ordering::SeqCst)
    }

    /// This connection's fate, drawn when it is accepted (always drawn, so that the sequence
    /// of draws does not depend on when faults were switched off).
    fn plan(&self) -> Option<Fault> {
        let mut rng = self.rng.lock().unwrap();
        let roll = rng.f64();
        let direction = if rng.bool() {
            Direction::Down
        } else {
            Direction::Up
        };
        let after = (rng.f64() * (self.rates.max_offset as f64).ln()).exp() as u64;
        let reset = rng.bool();
        let stall =
            Duration::from_millis(rng.u64(500..=self.rates.max_stall.as_millis().max(500) as u64));
        let action = if roll < self.rates.cut {
            Action::Cut { reset }
        } else if roll < self.rates.cut + self.rates.stall {
            Action::Stall(stall)
        } else {
            return None;
        };
        self.faults_on().then_some(Fault {
            direction,
            after: after.max(1),
            action,
        })
    }
}

/// The reason a pump stopped early.
struct Cut {
    reset: bool,
}

async fn serve(mut client: TcpStream, state: Arc<State>) {
    state.connections.fetch_add(1, Ordering::SeqCst);
    let fault = state.plan();
    let _ = client.set_nodelay(true);
    let mut upstream = match TcpStream::connect(state.upstream).await {
        Ok(s) => s,
        Err(_) => {
            state.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let (up_fault, down_fault) = match fault {
        Some(f) if f.direction == Direction::Up => (Some(f), None),
        Some(f) => (None, Some(f)),
        None => (None, None),
    };
    let ended = {
        let (client_r, client_w) = client.split();
        let (upstream_r, upstream_w) = upstream.split();
        tokio::try_join!(
            pump(client_r, upstream_w, up_fault, &state),
            pump(upstream_r, client_w, down_fault, &state),
        )
    };
    if let Err(cut) = ended
        && cut.reset
    {
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
    // Dropping both streams closes them (with a reset when the linger is zero).
}

/// Copies `from` to `to` until end of stream, applying `fault` when its byte is reached (and
/// faults are still on). An I/O error ends the connection like a cut without reset.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut fault: Option<Fault>,
    state: &State,
) -> Result<(), Cut>
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let io_error = |_| Cut { reset: false };
    let mut buf = vec![0u8; 16 * 1024];
    let mut passed = 0u64;
    loop {
        let n = from.read(&mut buf).await.map_err(io_error)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let mut chunk = &buf[..n];
        if let Some(f) = fault
            && passed + n as u64 >= f.after
        {
            fault = None;
            if state.faults_on() {
                let head = (f.after - passed) as usize;
                to.write_all(&chunk[..head]).await.map_err(io_error)?;
                to.flush().await.map_err(io_error)?;
                passed += head as u64;
                chunk = &chunk[head..];
                match f.action {
                    Action::Cut { reset } => {
                        state.cuts.fetch_add(1, Ordering::SeqCst);
                        return Err(Cut { reset });
                    }
                    Action::Stall(pause) => {
                        state.stalls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
        to.write_all(chunk).await.map_err(io_error)?;
        passed += chunk.len() as u64;
        if let Some(rate) = state.rates.bytes_per_sec {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
    }
}
