//! Shutdown phases (docs/design.md §7). On SIGTERM or SIGINT readiness turns 503 at once, but the
//! listener stays open for the drain delay: Kubernetes removes the pod from Service endpoints
//! some time after the signal, and requests routed meanwhile must still be served. Then the
//! listener closes and in-flight requests finish within a bound. A second signal exits at once.

use std::time::Duration;

use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::watch,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    Draining,
    Stopping,
}

/// One server's view of the shutdown; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    phase: watch::Sender<Phase>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self {
            phase: watch::Sender::new(Phase::Serving),
        }
    }

    /// Readiness reports 503 from now on; requests are still served.
    pub fn start_draining(&self) {
        self.phase.send_if_modified(|phase| advance(phase, Phase::Draining));
    }

    /// Close the listener and finish in-flight requests.
    pub fn stop(&self) {
        self.phase.send_if_modified(|phase| advance(phase, Phase::Stopping));
    }

    pub fn is_draining(&self) -> bool {
        *self.phase.borrow() >= Phase::Draining
    }

    /// Resolves once [`Shutdown::stop`] was called.
    pub async fn stopped(&self) {
        let mut receiver = self.phase.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = receiver.wait_for(|phase| *phase == Phase::Stopping).await;
    }
}

/// The ticks of a periodic background task that ends with its server.
pub struct Ticks {
    interval: tokio::time::Interval,
    shutdown: Shutdown,
}

impl Ticks {
    /// Waits for the next tick (the first comes at once); `false` once the server stopped.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            () = self.shutdown.stopped() => false,
        }
    }
}

impl Shutdown {
    /// Ticks every `period` until this server stops. A slow run delays the next tick rather
    /// than causing a burst of catch-up runs.
    pub fn every(&self, period: Duration) -> Ticks {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks {
            interval,
            shutdown: self.clone(),
        }
    }
}

fn advance(phase: &mut Phase, to: Phase) -> bool {
    if *phase < to {
        *phase = to;
        true
    } else {
        false
    }
}

/// SIGTERM and SIGINT, listened to from creation on. Why one listener for both signals: a
/// listener created after the first signal would miss a second one that arrives before it is
/// first polled (tokio delivers a signal only to listeners that exist when it comes), and
/// that second signal would then be ignored instead of ending the drain.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs the handlers; from now on neither signal kills the process by default.
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// Waits for a signal, then drains every server and, after `drain`, stops the first one.
/// The caller stops the others in order (in `all` mode the gateway stops before the
/// user-service it depends on).
pub async fn on_signal(mut signals: Signals, servers: Vec<Shutdown>, drain: Duration) {
    signals.next().await;
    tracing::info!(
        drain_seconds = drain.as_secs(),
        "shutdown signal received; readiness now fails, still serving"
    );
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second shutdown signal; exiting at once");
        std::process::exit(130);
    });
    for server in &servers {
        server.start_draining();
    }
    tokio::time::sleep(drain).await;
    tracing::info!("drain delay over; closing listeners");
    if let Some(first) = servers.first() {
        first.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_draining());
        shutdown.start_draining();
        assert!(shutdown.is_draining());
        shutdown.stop();
        shutdown.start_draining();
        tokio::time::timeout(Duration::from_secs(1), shutdown.stopped())
            .await
            .expect("stop is not undone by a later start_draining");
    }
}
