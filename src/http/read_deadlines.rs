//! The read deadlines of one HTTP/1 connection: how long a client may take to send a request's
//! header block (`HEADER_READ_TIMEOUT_MS`), and how long a kept-alive connection may wait idle
//! for its next request (`KEEP_ALIVE_TIMEOUT_SECONDS`).
//!
//! hyper has one timer for both: its header-read timeout runs from the end of one response to
//! the headers of the next. That forces a choice between a short header deadline (the slowloris
//! defence) and idle connections that outlive a proxy's pool. ingress-nginx and cloud load
//! balancers reuse an idle upstream connection for 60 s; a server that closes it sooner races
//! the proxy's next request on it, and a POST lost that way is a 502 that nginx does not retry.
//! Like nginx (`client_header_timeout`, `keepalive_timeout`) and HAProxy (`timeout
//! http-request`, `timeout http-keep-alive`), the two are separate here: a new connection and a
//! request whose first bytes arrived get the short deadline, an idle one between requests the
//! long one, and a request being served none (its body and handler have their own deadline).
//!
//! Cost: one timer per connection, armed at accept and moved only when it fires early (the
//! deadline is checked against the clock then), so a request costs two clock reads and three
//! uncontended atomic updates, not a timer registration.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A new connection, or the first bytes of the next request arrived: the header deadline.
    AwaitingHead,
    /// The router has the request: no read deadline from here.
    Serving,
    /// The response was produced; waiting for the next request: the keep-alive deadline.
    Idle,
}

/// Where the connection's current request is, told by the service to the reader.
#[derive(Debug, Clone)]
pub struct RequestPhase {
    shared: Arc<Shared>,
    /// When the connection was accepted; `idle_since` counts from here.
    accepted: Instant,
}

#[derive(Debug)]
struct Shared {
    /// The low two bits are the phase, the rest counts changes, so the reader notices a new
    /// idle period even when it saw the previous one.
    state: AtomicU64,
    /// When the last response was produced, in microseconds since `accepted`. The service
    /// records it because the reader may not run then: hyper polls the socket again only when
    /// woken, and a read left pending while the request was served woke nothing.
    idle_since: AtomicU64,
}

impl RequestPhase {
    fn new(accepted: Instant) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: AtomicU64::new(encode(0, Phase::AwaitingHead)),
                idle_since: AtomicU64::new(0),
            }),
            accepted,
        }
    }

    /// The router was handed a request.
    pub fn serving(&self) {
        self.enter(Phase::Serving);
    }

    /// Its response was produced.
    pub fn idle(&self) {
        let since = u64::try_from(self.accepted.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.shared.idle_since.store(since, Ordering::Relaxed);
        self.enter(Phase::Idle);
    }

    fn idle_since(&self) -> Instant {
        self.accepted + Duration::from_micros(self.shared.idle_since.load(Ordering::Relaxed))
    }

    fn enter(&self, phase: Phase) {
        // One connection is one task, so nothing races these updates; the atomics only make
        // the handle shareable between the reader and the service.
        let changes = self.shared.state.load(Ordering::Relaxed) >> 2;
        self.shared.state.store(encode(changes + 1, phase), Ordering::Relaxed);
    }

    fn current(&self) -> (u64, Phase) {
        let state = self.shared.state.load(Ordering::Relaxed);
        let phase = match state & 0b11 {
            0 => Phase::AwaitingHead,
            1 => Phase::Serving,
            _ => Phase::Idle,
        };
        (state >> 2, phase)
    }
}

fn encode(changes: u64, phase: Phase) -> u64 {
    let bits = match phase {
        Phase::AwaitingHead => 0,
        Phase::Serving => 1,
        Phase::Idle => 2,
    };
    (changes << 2) | bits
}

/// The two limits.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub header_read: Duration,
    pub keep_alive: Duration,
}

/// A connection's socket that fails its reads with `TimedOut` once the current phase's deadline
/// passed; hyper then closes the connection.
pub struct DeadlineIo<T> {
    inner: T,
    phase: RequestPhase,
    deadlines: Deadlines,
    /// When the current header block's first bytes came (or the connection was accepted).
    head_since: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> DeadlineIo<T> {
    /// Wraps a just-accepted socket; the returned phase goes to the connection's service.
    pub fn new(inner: T, deadlines: Deadlines) -> (Self, RequestPhase) {
        let now = Instant::now();
        let phase = RequestPhase::new(now);
        let io = Self {
            inner,
            phase: phase.clone(),
            deadlines,
            head_since: now,
            timer: Box::pin(tokio::time::sleep_until(now + deadlines.header_read)),
        };
        (io, phase)
    }

    /// When the current phase ends the connection, if it does.
    fn deadline(&self, phase: Phase) -> Option<Instant> {
        match phase {
            Phase::AwaitingHead => Some(self.head_since + self.deadlines.header_read),
            Phase::Serving => None,
            Phase::Idle => Some(self.phase.idle_since() + self.deadlines.keep_alive),
        }
    }

    /// Called when a read would block: `Ready(Err)` once the deadline passed, else `Pending`
    /// with the timer set to wake the task no later than the deadline. Never `Ready(Ok)`.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let phase = self.phase.current().1;
            match self.deadline(phase) {
                Some(deadline) => {
                    if self.timer.deadline() > deadline {
                        self.timer.as_mut().reset(deadline);
                    }
                    if self.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if Instant::now() >= deadline {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            match phase {
                                Phase::Idle => "idle longer than the keep-alive timeout",
                                _ => "header block not received within the header-read timeout",
                            },
                        )));
                    }
                    // The timer was set for an earlier phase's deadline: move it to this one.
                    self.timer.as_mut().reset(deadline);
                }
                None => {
                    // While a request is served nothing ends the connection, but this pending
                    // read is the last chance to be woken after the response (see
                    // `Shared::idle_since`): the timer checks again a keep-alive period later.
                    if self.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.timer.as_mut().reset(Instant::now() + self.deadlines.keep_alive);
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase.current().1 == Phase::Idle {
                    // The next request's first bytes: its header block is now on the clock.
                    this.phase.enter(Phase::AwaitingHead);
                    this.head_since = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
