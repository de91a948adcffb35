//! Admission: what the server takes on, counted by what it actually holds rather than by
//! what a client announces.
//!
//! - [`Connections`]: the open connections, a general allowance, a cap per client address,
//!   and a small reserve beyond the general allowance that only answers `/healthz` and
//!   `/metrics` (and tells everyone else 503), so that a liveness probe is answered while
//!   the general allowance is full.
//! - [`Budget`]: one server-wide count of bytes held — upload bodies as they arrive,
//!   photos fetched by URL as they arrive, and the decode of each photo searched. A
//!   request that would go past it is refused (503) at once rather than queued: waiting
//!   for memory is how a flood turns into an outage.
//! - [`Pool`]: every search, recommendation, embedding and write runs here, on as many
//!   threads as there are cores, off the async threads (which keep accepting, reading and
//!   answering `/healthz`), behind a bounded queue; a full queue is a 503 at once, and a
//!   job that waited past the queue wait, or whose client went away, is not run.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::error::AppError;

/// Which allowance a connection was let in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Allowance {
    /// Any request.
    General,
    /// The reserve beyond the general allowance: one request, answered only if it is a
    /// probe (`/healthz`, `/metrics`), 503 otherwise.
    Reserve,
}

#[derive(Default)]
struct Open {
    general: usize,
    reserve: usize,
    /// Per client address: its connections of both allowances, and of the reserve.
    by_address: HashMap<IpAddr, (usize, usize)>,
}

/// Reserve connections one client address may hold at once. A probe needs one at a time;
/// without a cap, a crowd past the general allowance would take every reserve place,
/// each for as long as reading its head takes, and the probe would find none.
pub const RESERVE_PER_ADDRESS: usize = 2;

/// The server's open connections, counted by allowance and by client address.
pub(super) struct Connections {
    general: usize,
    reserve: usize,
    per_address: usize,
    open: Mutex<Open>,
}

/// A connection's place, given back when dropped.
pub(super) struct Ticket {
    gate: Arc<Connections>,
    address: IpAddr,
    pub(super) allowance: Allowance,
}

impl Connections {
    /// `general` connections for any request, `reserve` more for probes, at most
    /// `per_address` (of both) from one client address. Zero limits count as one.
    pub(super) fn new(general: usize, reserve: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            general: general.max(1),
            reserve,
            per_address: per_address.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for a connection from `address`, or `None`: close it unanswered (its
    /// address holds its share, or both allowances are full).
    pub(super) fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Ticket> {
        // An IPv4 client seen through an IPv6 socket is the same client.
        let address = address.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let (all, reserve) = open.by_address.get(&address).copied().unwrap_or((0, 0));
        if all >= self.per_address {
            return None;
        }
        let allowance = if open.general < self.general {
            open.general += 1;
            Allowance::General
        } else if open.reserve < self.reserve && reserve < RESERVE_PER_ADDRESS {
            open.reserve += 1;
            Allowance::Reserve
        } else {
            return None;
        };
        let held = open.by_address.entry(address).or_insert((0, 0));
        held.0 += 1;
        if allowance == Allowance::Reserve {
            held.1 += 1;
        }
        Some(Ticket { gate: self.clone(), address, allowance })
    }

    /// Connections open now, of both allowances.
    pub(super) fn open(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.general + open.reserve
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(PoisonError::into_inner);
        let reserve = self.allowance == Allowance::Reserve;
        match self.allowance {
            Allowance::General => open.general -= 1,
            Allowance::Reserve => open.reserve -= 1,
        }
        if let Some(held) = open.by_address.get_mut(&self.address) {
            held.0 -= 1;
            if reserve {
                held.1 -= 1;
            }
            if held.0 == 0 {
                // Addresses come and go: the map holds only those with connections open.
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// The server-wide byte budget.
pub(super) struct Budget {
    limit: u64,
    used: AtomicU64,
}

/// Bytes of the [`Budget`] held, given back when dropped; it can grow as more arrives.
pub(super) struct Held {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Budget {
    pub(super) fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicU64::new(0) })
    }

    /// Nothing held yet, to [`Held::grow`].
    pub(super) fn nothing(self: &Arc<Self>) -> Held {
        Held { budget: self.clone(), bytes: 0 }
    }

    /// Bytes held now, by every request together.
    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

impl Held {
    /// Hold `bytes` more, or `false` (nothing more held) when they would go past the limit.
    pub(super) fn grow(&mut self, bytes: u64) -> bool {
        let limit = self.budget.limit;
        let taken = self.budget.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(bytes).filter(|&total| total <= limit)
        });
        if taken.is_ok() {
            self.bytes += bytes;
        }
        taken.is_ok()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The threads every search runs on, behind a bounded queue.
pub(super) struct Pool {
    queue: Option<crossbeam_channel::Sender<Job>>,
    wait: Duration,
    workers: usize,
    /// How long a job holds a thread, in microseconds (a moving average of the jobs
    /// run): what the jobs already waiting will cost a new one.
    service_us: Arc<AtomicU64>,
}

/// The weight of the newest job's time in [`Pool`]'s moving average.
const SERVICE_WEIGHT: f64 = 0.2;

/// Fold one job's time into the moving average of `service_us` (the first sets it).
fn record_service(service_us: &AtomicU64, took: Duration) {
    let took = took.as_micros().min(u128::from(u64::MAX)) as u64;
    let _ = service_us.fetch_update(Ordering::AcqRel, Ordering::Acquire, |mean| {
        Some(if mean == 0 {
            took.max(1)
        } else {
            ((1.0 - SERVICE_WEIGHT) * mean as f64 + SERVICE_WEIGHT * took as f64) as u64
        })
    });
}

/// How much lower than the connection threads' the search threads' scheduling priority
/// is by default (nice value added; `serve --search-niceness`).
pub const SEARCH_NICENESS: i32 = 10;

/// Lower the calling thread's scheduling priority by `niceness` (on Linux the
/// nice value is a thread's, and threads it starts inherit it): the threads that embed
/// and search give way to those that accept connections and answer `/healthz`, so that
/// a saturated server still answers its probes at once, and searches still use every
/// core nothing else wants. Elsewhere, or when refused, nothing changes.
pub fn yield_to_connections(niceness: i32) {
    if niceness <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread (`who` 0), no memory involved.
    unsafe {
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, 0);
        if *libc::__errno_location() == 0 {
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, (now + niceness).min(19));
        }
    }
}

impl Pool {
    /// `workers` threads (0: one per core), at most `queue` jobs waiting for one, each
    /// for at most `wait`.
    pub(super) fn new(workers: usize, queue: usize, wait: Duration, niceness: i32) -> Self {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            workers
        };
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue.max(1));
        let mut started = 0;
        for n in 0..workers {
            let rx = rx.clone();
            // The threads end when the pool (the only sender) is dropped.
            let spawned = std::thread::Builder::new().name(format!("lookalike-search-{n}")).spawn(
                move || {
                    yield_to_connections(niceness);
                    rx.iter().for_each(|job| job());
                },
            );
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(%e, "a search thread could not start"),
            }
        }
        // Without a thread nothing queued would ever run: every search is then refused.
        Self {
            queue: (started > 0).then_some(tx),
            wait,
            workers: started,
            service_us: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How long a job queued now would wait for a thread: the jobs already waiting,
    /// shared over the threads, at the mean time a job takes. Zero with none waiting, so
    /// that a job as long as the queue wait itself is still taken when the queue is empty.
    fn expected_wait(&self, waiting: usize) -> Duration {
        let mean = self.service_us.load(Ordering::Acquire);
        let us = mean.saturating_mul(waiting as u64) / self.workers.max(1) as u64;
        Duration::from_micros(us)
    }

    pub(super) fn workers(&self) -> usize {
        self.workers
    }

    /// Run `f` on a pool thread. Refused at once (`Busy`) when the queue is full or the
    /// jobs already waiting would keep it past the queue wait (by the mean time a job
    /// takes), and when it has waited past the queue wait by the time a thread takes it
    /// all the same; not run at all when the caller stopped waiting (the request's client
    /// went away). So an accepted search waits at most about the queue wait, and the
    /// rest are told at once rather than after waiting for it.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| AppError::Internal("no search thread could start".into()))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, AppError>>();
        let queued = Instant::now();
        let wait = self.wait;
        if self.expected_wait(queue.len()) > wait {
            return Err(AppError::Busy);
        }
        let service_us = self.service_us.clone();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return;
            }
            if queued.elapsed() > wait {
                let _ = tx.send(Err(AppError::Busy));
                return;
            }
            let started = Instant::now();
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|_| AppError::Internal("a search panicked".into()));
            record_service(&service_us, started.elapsed());
            let _ = tx.send(out);
        });
        queue.try_send(job).map_err(|_| AppError::Busy)?;
        rx.await.map_err(|_| AppError::Internal("a search thread stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_the_reserve_follows_the_general_allowance() {
        let gate = Connections::new(2, 1, 2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.2".parse().unwrap(),
            "127.0.0.3".parse().unwrap(),
            "::ffff:127.0.0.2".parse().unwrap(),
        );
        let first = gate.admit(a).unwrap();
        let second = gate.admit(a).unwrap();
        assert_eq!((first.allowance, second.allowance), (Allowance::General, Allowance::General));
        // The address holds its share, also when it comes as an IPv4-mapped IPv6 one.
        assert!(gate.admit(a).is_none() && gate.admit(c).is_none());
        // Another address gets the reserve, then nothing.
        assert_eq!(gate.admit(b).unwrap().allowance, Allowance::Reserve);
        let reserve = gate.admit(b).unwrap();
        assert_eq!(reserve.allowance, Allowance::Reserve);
        assert!(gate.admit(b).is_none());
        assert_eq!(gate.open(), 3);
        drop(first);
        assert_eq!(gate.admit(b).unwrap().allowance, Allowance::General);
        drop((second, reserve));
        assert_eq!(gate.open(), 0);
        assert!(gate.open.lock().unwrap().by_address.is_empty());
    }

    #[test]
    fn an_address_holds_at_most_two_reserve_places_so_a_probe_from_another_finds_one() {
        let gate = Connections::new(1, 8, 64);
        let (crowd, probe): (IpAddr, IpAddr) =
            ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let general = gate.admit(crowd).unwrap();
        let first = gate.admit(crowd).unwrap();
        let second = gate.admit(crowd).unwrap();
        assert_eq!((first.allowance, second.allowance), (Allowance::Reserve, Allowance::Reserve));
        assert!(gate.admit(crowd).is_none(), "a third reserve place for one address");
        let probed = gate.admit(probe).unwrap();
        assert_eq!(probed.allowance, Allowance::Reserve);
        // A place given back is the address's again.
        drop(first);
        assert_eq!(gate.admit(crowd).unwrap().allowance, Allowance::Reserve);
        drop((general, second, probed));
    }

    #[test]
    fn the_budget_refuses_past_its_limit_and_gets_back_what_is_dropped() {
        let budget = Budget::new(100);
        let mut one = budget.nothing();
        assert!(one.grow(60));
        let mut two = budget.nothing();
        assert!(!two.grow(41), "60 + 41 is past 100");
        assert!(two.grow(40));
        assert_eq!(budget.used(), 100);
        drop(one);
        assert_eq!(budget.used(), 40);
        assert!(two.grow(60));
        drop(two);
        assert_eq!(budget.used(), 0);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn searches_run_below_the_connection_threads_priority() {
        // SAFETY: reads the calling thread's nice value.
        let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let pool = Pool::new(1, 1, Duration::from_secs(5), SEARCH_NICENESS);
        // SAFETY: as above, on the search thread.
        let there = pool.run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }).await;
        assert_eq!(there.ok(), Some((here + SEARCH_NICENESS).min(19)));
        // The thread that asked is left as it was.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, here);
    }

    /// A job that holds the pool's thread until told to end (then `Ok(true)`), once it is
    /// running.
    async fn occupy(
        pool: &Arc<Pool>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<Result<bool, AppError>>) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            let job = move || {
                let _ = started_tx.send(());
                held.recv().is_ok()
            };
            tokio::spawn(async move { pool.run(job).await })
        };
        while started.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (release, busy)
    }

    #[tokio::test]
    async fn the_pool_refuses_at_once_what_the_waiting_jobs_would_keep_past_the_queue_wait() {
        let wait = Duration::from_millis(100);
        let pool = Arc::new(Pool::new(1, 8, wait, 0));
        // One job of 300 ms teaches the pool what a job takes.
        pool.run(|| std::thread::sleep(Duration::from_millis(300))).await.unwrap();
        assert!(pool.expected_wait(1) >= Duration::from_millis(300));
        assert_eq!(pool.expected_wait(0), Duration::ZERO);
        let (release, busy) = occupy(&pool).await;
        // Nothing waits yet: the first job is queued, whatever a job takes.
        let first = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 1).await })
        };
        while pool.queue.as_ref().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // One job waits, worth 300 ms against a wait of 100: refused without queueing,
        // though the queue has room for 7 more.
        assert!(matches!(pool.run(|| 2).await, Err(AppError::Busy)));
        assert_eq!(pool.queue.as_ref().unwrap().len(), 1, "the refused job was not queued");
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        let _ = first.await.unwrap();
        // With the queue empty again, a job is taken.
        assert_eq!(pool.run(|| 3).await.unwrap(), 3);
    }

    #[test]
    fn a_jobs_time_is_a_moving_average() {
        let mean = AtomicU64::new(0);
        record_service(&mean, Duration::from_millis(100));
        assert_eq!(mean.load(Ordering::Acquire), 100_000, "the first job sets it");
        record_service(&mean, Duration::from_millis(200));
        assert_eq!(mean.load(Ordering::Acquire), 120_000);
    }

    #[tokio::test]
    async fn the_pool_refuses_past_its_queue_and_skips_stale_jobs() {
        // The queue wait is long beside what a loaded 2-core CI machine takes to schedule a
        // thread, so that only the job meant to go stale does.
        let wait = Duration::from_millis(1_000);
        let pool = Arc::new(Pool::new(1, 1, wait, 0));
        assert_eq!(pool.workers(), 1);
        let (release, busy) = occupy(&pool).await;
        // The thread is taken: one job waits in the queue, the next is refused at once.
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 7).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = Instant::now();
        assert!(matches!(pool.run(|| 8).await, Err(AppError::Busy)));
        assert!(t0.elapsed() < wait / 2, "refused at once, not after the queue wait");
        // The queued job waits past the queue wait: refused, not run, when its turn comes.
        tokio::time::sleep(wait + Duration::from_millis(300)).await;
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        assert!(matches!(queued.await.unwrap(), Err(AppError::Busy)));
        assert_eq!(pool.run(|| 9).await.unwrap(), 9);
        // A job whose caller stopped waiting (its client went away) is not run.
        let (release, busy) = occupy(&pool).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let abandoned = {
            let (pool, ran) = (pool.clone(), ran.clone());
            tokio::spawn(async move {
                pool.run(move || ran.store(true, std::sync::atomic::Ordering::SeqCst)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        abandoned.abort();
        let _ = abandoned.await;
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        // The thread may not have taken the abandoned job off the queue yet: a new job is
        // refused until it has, then runs.
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = loop {
            match pool.run(|| 11).await {
                Err(AppError::Busy) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => break other,
            }
        };
        assert_eq!(got.unwrap(), 11, "the queue has moved past it");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "the abandoned job ran");
        // A panic is an error for its caller, and the thread goes on.
        assert!(matches!(pool.run(|| -> u32 { panic!("boom") }).await, Err(AppError::Internal(_))));
        assert_eq!(pool.run(|| 10).await.unwrap(), 10);
    }
}
