//! Idle spin: for up to `[server] idle_spin` after a request starts or
//! finishes, one worker keeps polling instead of going to sleep, when at most
//! one request is in flight and the gap to the next event is predicted short.
//!
//! Why: a relayed call puts the gateway to sleep twice (waiting for the
//! upstream's reply, then for the client's next request), and each time it
//! is woken by another process. When the gateway's vCPU went idle meanwhile,
//! that wake-up has to bring an idle vCPU back, an inter-processor interrupt
//! through the hypervisor. On the 2-vCPU VM this project is measured on, a
//! pipe ping-pong between two processes costs 47-58 µs per round trip across
//! vCPUs and 5.4 µs pinned to one: about 25 µs per wake-up, twice per
//! relayed call, most of the gateway's added latency at concurrency 1. A
//! worker that stays busy keeps its vCPU from idling, so those wake-ups cost
//! what the kernel charges, not what the hypervisor does.
//!
//! The spinner is one task that yields in a loop (tokio polls its I/O driver
//! between a yielded task's polls) through a gap it expects to be short, and
//! parks on a [`Notify`] otherwise. Two gaps matter at low concurrency: from
//! a lone request's start to its end (the upstream's turn) and from an end
//! to the next start (the client's turn). Each has a 2-bit saturating
//! counter, as in branch prediction: a gap shorter than the window counts
//! up, a longer one down, and the gateway spins through the gap, for at most
//! a window, while its counter says "short". So an upstream that answers in
//! milliseconds is not spun for, while its client's quick next request still
//! is; and a client that calls once a second costs no spinning after its
//! replies. With more than one request in flight the workers rarely idle,
//! and spinning would only take CPU from the upstreams and clients on the
//! same cores (measured on 2 cores at 16 and 64 concurrent: 5-15% fewer
//! calls/s when it spun regardless), so it does not. An idle gateway costs
//! nothing. `idle_spin = "0s"` turns it off.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Spinning stops above this many requests in flight (see the module docs).
const MAX_IN_FLIGHT: usize = 1;

/// A gap predictor is a 2-bit saturating counter, as in branch prediction:
/// a gap shorter than the window counts up, a longer one down, and the
/// gateway spins through a gap while the counter is at least this.
const PREDICT_SPIN: u8 = 2;
const PREDICT_MAX: u8 = 3;

/// The shared state of one gateway's spinner (see the module docs).
pub struct IdleSpin {
    /// The window in microseconds.
    window: u64,
    epoch: Instant,
    /// Spin until this many microseconds since `epoch` (0: not now).
    until: AtomicU64,
    in_flight: AtomicUsize,
    /// When the last lone request started, and the last request ended.
    started: AtomicU64,
    ended: AtomicU64,
    /// Whether the upstream tends to answer a lone request within the
    /// window, and the client to send its next request within the window.
    after_start: AtomicU8,
    after_end: AtomicU8,
    /// The spinner parks on `wake`; whoever arms it notifies it (a permit
    /// stored while it spins costs it one look at `until`, no more).
    wake: Notify,
    /// Times the spinner has yielded (tests watch it stop).
    spins: AtomicU64,
}

/// One request in flight, from [`IdleSpin::begin`] until dropped (finished
/// or cancelled).
pub struct InFlight(Arc<IdleSpin>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let spin = &self.0;
        let left = spin.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        let now = spin.now();
        let next = if left == 0 {
            spin.learn(&spin.after_start, now, &spin.started);
            &spin.after_end
        } else {
            &spin.after_start
        };
        spin.ended.store(now, Ordering::SeqCst);
        spin.arm(now, left, next);
    }
}

impl IdleSpin {
    /// A spinner for `window`, or `None` when the window is zero.
    pub fn new(window: Duration) -> Option<Arc<Self>> {
        (!window.is_zero()).then(|| {
            Arc::new(Self {
                window: u64::try_from(window.as_micros()).unwrap_or(u64::MAX),
                epoch: Instant::now(),
                until: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                started: AtomicU64::new(0),
                ended: AtomicU64::new(0),
                after_start: AtomicU8::new(PREDICT_MAX),
                after_end: AtomicU8::new(PREDICT_MAX),
                wake: Notify::new(),
                spins: AtomicU64::new(0),
            })
        })
    }

    /// A request starts; it ends when the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.now();
        if now_in_flight == 1 {
            self.learn(&self.after_end, now, &self.ended);
            self.started.store(now, Ordering::SeqCst);
        }
        self.arm(now, now_in_flight, &self.after_start);
        InFlight(Arc::clone(self))
    }

    /// Counts the gap since `since` as a hit or a miss of the window.
    fn learn(&self, predictor: &AtomicU8, now: u64, since: &AtomicU64) {
        let hit = now.saturating_sub(since.load(Ordering::SeqCst)) < self.window;
        let p = predictor.load(Ordering::Relaxed);
        let p = if hit {
            (p + 1).min(PREDICT_MAX)
        } else {
            p.saturating_sub(1)
        };
        predictor.store(p, Ordering::Relaxed);
    }

    /// Spins through the coming gap if few requests are in flight and the
    /// gap is predicted short; stops spinning otherwise.
    fn arm(&self, now: u64, in_flight: usize, gap: &AtomicU8) {
        if in_flight > MAX_IN_FLIGHT || gap.load(Ordering::Relaxed) < PREDICT_SPIN {
            self.until.store(0, Ordering::SeqCst);
            return;
        }
        self.until
            .store(now.saturating_add(self.window), Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Whether to spin now.
    fn worth_it(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) <= MAX_IN_FLIGHT
            && self.now() < self.until.load(Ordering::SeqCst)
    }

    /// Spins while [`Self::worth_it`], parks otherwise, until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if self.worth_it() {
                self.spins.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
                continue;
            }
            // An `arm` since the look above left a permit: no wake is lost.
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
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

    /// Waits past the window, then checks the count stands still.
    async fn settled(spin: &IdleSpin, window: Duration) -> u64 {
        tokio::time::sleep(window + Duration::from_millis(50)).await;
        let n = spins(spin);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(spins(spin), n, "no spinning past the window");
        n
    }

    /// Waits up to `within` for the spinner to spin.
    async fn spun(spin: &IdleSpin, from: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while spins(spin) == from && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        spins(spin) > from
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spins_after_a_request_then_parks_and_not_while_many_are_in_flight() {
        let window = Duration::from_millis(200);
        let spin = IdleSpin::new(window).expect("a window");
        let stop = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&spin).run(stop.clone()));
        let idle = settled(&spin, window).await;

        // One request: spins during it and for a window after it.
        let one = spin.begin();
        assert!(
            spun(&spin, idle, window).await,
            "a request wakes the spinner"
        );
        drop(one);
        settled(&spin, window).await;

        // Two in flight: no spinning (the first one's start may wake the
        // spinner for a moment; give that iteration time to end).
        let (a, b) = (spin.begin(), spin.begin());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let busy = spins(&spin);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(spins(&spin), busy, "no spinning with two in flight");
        drop(a);
        // Down to one in flight: worth spinning again.
        assert!(spun(&spin, busy, window).await, "one left in flight: spins");
        drop(b);
        settled(&spin, window).await;

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the spinner ends on stop")
            .expect("the spinner does not panic");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gap_that_keeps_outlasting_the_window_is_not_spun_through() {
        let window = Duration::from_millis(20);
        let spin = IdleSpin::new(window).expect("a window");
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&spin).run(stop.clone()));
        // An upstream that takes twice the window, three times.
        for _ in 0..3 {
            let call = spin.begin();
            tokio::time::sleep(window * 2).await;
            drop(call);
        }
        // The next call is not spun through...
        let call = spin.begin();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let n = spins(&spin);
        tokio::time::sleep(window).await;
        assert_eq!(spins(&spin), n, "a slow upstream's gap is not spun through");
        // ...but the client's quick next request still is.
        drop(call);
        assert!(
            spun(&spin, n, window).await,
            "the client's gap is spun through"
        );
        stop.cancel();
    }

    #[test]
    fn a_zero_window_is_off() {
        assert!(IdleSpin::new(Duration::ZERO).is_none());
    }
}
