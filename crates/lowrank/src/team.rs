//! A persistent two-thread team for phases of a few tens of microseconds,
//! too short for rayon's wake-up: the per-step phases of `deep` at `n = 100`,
//! the passes of `cp-als` over small tensors (the course notebook's 30³).
//!
//! [`Team::join`] runs one closure on the calling thread and the other on a
//! helper thread owned by the team, and returns when both are done — the
//! shape of `rayon::join`, but with the work split fixed by the caller (two
//! closures, no task queue), so a run is reproducible bit for bit. The helper
//! spins on an atomic epoch counter for [`SPIN`] after each job (the next
//! phase of a step follows within microseconds), then parks, so an idle team
//! does not burn a core; the dispatcher unparks it when it has gone to
//! sleep. A second closure the helper has not claimed by the time the
//! caller's own is done (the helper is parked, or descheduled on a loaded
//! machine) is run by the caller instead of waiting for a wake-up: the same
//! closure, so the same result, whichever thread runs it. One the helper has
//! claimed is waited for (spinning, then yielding).
//!
//! The closures may borrow from the caller's stack (as with scoped threads):
//! `join` does not return, nor unwind, before the helper has finished its
//! closure. A panic in either closure is re-raised on the calling thread
//! after both have finished.

use std::cell::{Cell, UnsafeCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long the helper spins for the next job before it parks.
pub const SPIN: Duration = Duration::from_micros(50);

/// A type-erased pointer to the helper's closure of the current job.
type JobPtr = *mut (dyn FnMut() + Send + 'static);

/// State shared by the dispatcher and the helper.
struct Shared {
    /// Jobs posted so far (the helper runs job `e` when `epoch` reaches `e`).
    epoch: AtomicU64,
    /// The last job claimed (by the helper, or by the dispatcher when the
    /// helper had not claimed it by the time the dispatcher's own side was
    /// done).
    claimed: AtomicU64,
    /// The last job finished.
    done: AtomicU64,
    /// The helper is parked or about to park (the dispatcher must unpark it).
    sleeping: AtomicBool,
    /// The team is being dropped.
    shutdown: AtomicBool,
    /// The helper's closure of the current job panicked.
    panicked: AtomicBool,
    /// The current job: written by the dispatcher before it bumps `epoch`
    /// (release), read by the helper after it sees the new epoch (acquire).
    job: UnsafeCell<Option<JobPtr>>,
    /// The payload of the helper's panic, handed back to the dispatcher.
    payload: std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

// SAFETY: `job` is only written by the dispatcher while no job is in flight
// (`done == epoch`) and only read by the helper between seeing a new epoch
// and publishing `done`; the epoch/done atomics order those accesses. The
// closure behind the pointer is `Send`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A team of the calling thread and one persistent helper thread.
///
/// Not `Sync`: only the thread that owns the team dispatches jobs, and a
/// `join` from inside one of its own closures panics (the helper's closure
/// cannot reach the team at all, the caller's is caught by a flag).
pub struct Team {
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
    /// A `join` is in progress (re-entrance guard).
    active: Cell<bool>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team").field("jobs", &self.shared.epoch.load(Ordering::Relaxed)).finish()
    }
}

impl Team {
    /// Start the helper thread.
    pub fn new() -> Result<Team> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            done: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            payload: std::sync::Mutex::new(None),
        });
        let s = Arc::clone(&shared);
        let helper = thread::Builder::new()
            .name("lowrank-deep-helper".into())
            .spawn(move || helper_loop(&s))
            .map_err(|e| Error::invalid(format!("cannot start the helper thread: {e}")))?;
        Ok(Team { shared, helper: Some(helper), active: Cell::new(false) })
    }

    /// Run `a` on the calling thread and `b` on the helper; return `a`'s
    /// result once both have finished. A panic of either is re-raised here
    /// (after both have finished).
    pub fn join<A, B, RA>(&self, a: A, b: B) -> RA
    where
        A: FnOnce() -> RA,
        B: FnOnce() + Send,
    {
        assert!(!self.active.replace(true), "Team::join called from inside a closure of the same team");
        let _active = Reset(&self.active);
        let mut b = Some(b);
        let mut call_b = move || {
            if let Some(f) = b.take() {
                f()
            }
        };
        let ptr: *mut (dyn FnMut() + Send + '_) = &mut call_b;
        // SAFETY: only the lifetime is erased. The pointer is dereferenced
        // only by the helper after it has claimed this job and before it
        // publishes `done`; `Wait` below blocks this frame (normal return
        // and unwinding alike) until then, so `call_b` and everything it
        // borrows outlive every use. When this thread claims the job itself,
        // the helper never dereferences the pointer.
        let ptr: JobPtr = unsafe { std::mem::transmute::<*mut (dyn FnMut() + Send + '_), JobPtr>(ptr) };
        let s = &*self.shared;
        // a panic of the helper left over from a join whose own side
        // panicked too (and so never looked at the helper's)
        if s.panicked.swap(false, Ordering::Relaxed)
            && let Ok(mut g) = s.payload.lock()
        {
            g.take();
        }
        let e = s.epoch.load(Ordering::Relaxed) + 1;
        // SAFETY: no job is in flight (the previous `join` waited for it), so
        // the helper does not read `job` now.
        unsafe { *s.job.get() = Some(ptr) };
        s.epoch.store(e, Ordering::SeqCst);
        if s.sleeping.load(Ordering::SeqCst)
            && let Some(h) = &self.helper
        {
            h.thread().unpark();
        }
        let wait = Wait { s, e };
        let ra = a();
        if s.claimed.compare_exchange(e - 1, e, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // the helper has not started `b` (parked, or descheduled on a
            // loaded machine): run it here instead of waiting — the same
            // computation, so the same result
            s.done.store(e, Ordering::Release);
            drop(wait);
            call_b();
            return ra;
        }
        drop(wait);
        if s.panicked.swap(false, Ordering::Acquire) {
            let p = s.payload.lock().ok().and_then(|mut g| g.take());
            resume_unwind(p.unwrap_or_else(|| Box::new("the helper thread panicked")));
        }
        ra
    }
}

/// Clears the re-entrance flag when dropped.
struct Reset<'a>(&'a Cell<bool>);

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Blocks (when dropped) until the helper has finished job `e`.
struct Wait<'a> {
    s: &'a Shared,
    e: u64,
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.s.done.load(Ordering::Acquire) < self.e {
            spins += 1;
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                // the helper may be descheduled (a loaded machine): give it
                // the core
                thread::yield_now();
            }
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(h) = self.helper.take() {
            h.thread().unpark();
            // the helper never panics outside `catch_unwind`
            let _ = h.join();
        }
    }
}

fn helper_loop(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // spin, then park until a new epoch (or shutdown)
        let t0 = Instant::now();
        let mut spins = 0u32;
        let e = loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                break e;
            }
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            spins += 1;
            if !spins.is_multiple_of(64) || t0.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            s.sleeping.store(true, Ordering::SeqCst);
            // re-check after announcing sleep: a post between the load above
            // and the store is seen here, a later one unparks us
            if s.epoch.load(Ordering::SeqCst) == seen && !s.shutdown.load(Ordering::SeqCst) {
                thread::park();
            }
            s.sleeping.store(false, Ordering::SeqCst);
            spins = 0;
        };
        let mine = s.claimed.compare_exchange(e - 1, e, Ordering::AcqRel, Ordering::Acquire).is_ok();
        seen = e;
        if !mine {
            // the dispatcher ran it (and marked it done)
            continue;
        }
        // SAFETY: the dispatcher wrote `job` before publishing epoch `e`
        // (acquired above); having claimed job `e`, we are its only reader,
        // and the dispatcher keeps the slot and the closure alive and
        // unchanged until `done` reaches `e`.
        let job = unsafe { *s.job.get() };
        if let Some(ptr) = job {
            // SAFETY: see above; the closure is only called from here.
            let r = catch_unwind(AssertUnwindSafe(|| unsafe { (*ptr)() }));
            if let Err(p) = r {
                if let Ok(mut g) = s.payload.lock() {
                    *g = Some(p);
                }
                s.panicked.store(true, Ordering::Release);
            }
        }
        s.done.store(e, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_runs_both_sides_on_disjoint_borrows() {
        let team = Team::new().unwrap();
        let mut v = vec![0u64; 1000];
        for round in 0..2000u64 {
            let (lo, hi) = v.split_at_mut(500);
            let r = team.join(
                || {
                    lo.iter_mut().enumerate().for_each(|(i, x)| *x += i as u64 + round);
                    7
                },
                || hi.iter_mut().enumerate().for_each(|(i, x)| *x += (i + 500) as u64 + round),
            );
            assert_eq!(r, 7);
        }
        let sum_r: u64 = (0..2000).sum();
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x, 2000 * i as u64 + sum_r);
        }
    }

    #[test]
    fn nested_join_panics_instead_of_corrupting_the_job() {
        let team = Team::new().unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| team.join(|| team.join(|| (), || ()), || ())));
        assert!(r.is_err());
        // the team is usable afterwards
        let mut x = 0;
        team.join(|| (), || x = 1);
        assert_eq!(x, 1);
    }

    #[test]
    fn helper_parks_and_wakes_up_again() {
        let team = Team::new().unwrap();
        let mut x = 0;
        for _ in 0..3 {
            // longer than the spin: the helper parks, the next join unparks it
            thread::sleep(SPIN * 10);
            team.join(|| (), || x += 1);
        }
        assert_eq!(x, 3);
    }

    #[test]
    fn helper_runs_on_another_thread() {
        let team = Team::new().unwrap();
        let me = thread::current().id();
        let mut other = None;
        // the caller's side is long enough for the helper to claim the job
        team.join(|| thread::sleep(Duration::from_millis(50)), || other = Some(thread::current().id()));
        assert!(other.is_some_and(|t| t != me));
        // a job the helper has not claimed when the caller's side is done is
        // run by the caller: either way it runs exactly once
        let mut count = 0;
        for _ in 0..200 {
            team.join(|| (), || count += 1);
        }
        assert_eq!(count, 200);
    }

    #[test]
    fn a_panic_of_the_helper_side_reaches_the_caller_and_the_team_still_works() {
        let team = Team::new().unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| team.join(|| (), || panic!("boom"))));
        assert!(r.is_err());
        let mut y = 0;
        team.join(|| (), || y = 5);
        assert_eq!(y, 5);
        // a panic of the caller's side waits for the helper before unwinding
        let mut z = 0;
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.join(
                || panic!("caller"),
                || {
                    thread::sleep(Duration::from_millis(5));
                    z = 1
                },
            )
        }));
        assert!(r.is_err());
        assert_eq!(z, 1);
    }
}
