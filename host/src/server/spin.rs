//! Idle spin: for `[server] idle_spin` after a request starts or finishes,
//! one worker keeps polling instead of going to sleep.
//!
//! Why: a relayed call puts the gateway to sleep twice (waiting for the
//! upstream's reply, then for the client's next request), and each time it
//! is woken by another process. When the gateway's CPU went idle meanwhile,
//! that wake-up has to bring an idle CPU back, which on a virtual machine is
//! an inter-processor interrupt through the hypervisor. On the 2-vCPU VM
//! this project is measured on, a pipe ping-pong between two processes costs
//! 47-58 µs per round trip across vCPUs and 5.4 µs pinned to one: about
//! 25 µs per wake-up, twice per relayed call, which was most of the
//! gateway's added latency at concurrency 1. A worker that stays busy keeps
//! its CPU from idling, so the client's and the upstream's wake-ups of the
//! gateway cost what the kernel charges, not what the hypervisor does.
//!
//! The spinner is one task that yields in a loop (tokio polls its I/O driver
//! between a yielded task's polls) while the last touch is younger than the
//! window, then parks on a [`Notify`] until the next touch: an idle gateway
//! costs nothing, a busy one never idles anyway, and a lightly loaded one
//! pays up to one window of one core's time per request. `idle_spin = "0s"`
//! turns it off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The shared state of one gateway's spinner (see the module docs).
pub struct IdleSpin {
    window: Duration,
    epoch: Instant,
    /// Microseconds since `epoch` of the last touch.
    last: AtomicU64,
    /// The spinner waits on `wake`; a touch must notify it.
    parked: AtomicBool,
    wake: Notify,
    /// Times the spinner has yielded (tests watch it stop).
    spins: AtomicU64,
}

impl IdleSpin {
    /// A spinner for `window`, or `None` when the window is zero.
    pub fn new(window: Duration) -> Option<Arc<Self>> {
        (!window.is_zero()).then(|| {
            Arc::new(Self {
                window,
                epoch: Instant::now(),
                last: AtomicU64::new(0),
                parked: AtomicBool::new(false),
                wake: Notify::new(),
                spins: AtomicU64::new(0),
            })
        })
    }

    /// Marks activity: the spinner keeps (or starts) spinning for a window.
    pub fn touch(&self) {
        self.last.store(self.now(), Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// Spins while touched within the window, parks otherwise, until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let window = u64::try_from(self.window.as_micros()).unwrap_or(u64::MAX);
        while !stop.is_cancelled() {
            if self.quiet_for() < window {
                self.spins.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
                continue;
            }
            // Publish `parked`, then look again: a touch in between either
            // sees `parked` and notifies, or is seen here (both SeqCst).
            self.parked.store(true, Ordering::SeqCst);
            if self.quiet_for() < window {
                self.parked.store(false, Ordering::SeqCst);
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Microseconds since the last touch.
    fn quiet_for(&self) -> u64 {
        self.now().saturating_sub(self.last.load(Ordering::SeqCst))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spins(s: &IdleSpin) -> u64 {
        s.spins.load(Ordering::Relaxed)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spins_after_a_touch_then_parks_until_the_next() {
        let window = Duration::from_millis(200);
        let spin = IdleSpin::new(window).expect("a window");
        let stop = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&spin).run(stop.clone()));
        // Spins only within a window of a touch (or of the start): past
        // it, the count stands still.
        let settled = || async {
            tokio::time::sleep(window + Duration::from_millis(50)).await;
            let n = spins(&spin);
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(spins(&spin), n, "no spinning past the window");
            n
        };
        let idle = settled().await;

        spin.touch();
        let deadline = Instant::now() + window;
        while spins(&spin) == idle && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(spins(&spin) > idle, "a touch wakes the spinner");
        let after = settled().await;
        assert!(after > idle);

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the spinner ends on stop")
            .expect("the spinner does not panic");
    }

    #[test]
    fn a_zero_window_is_off() {
        assert!(IdleSpin::new(Duration::ZERO).is_none());
    }
}
