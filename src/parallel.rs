//! Parallel loops on torch's own intra-op thread team (OpenMP).
//!
//! The pip torch runs its intra-op work on libgomp threads, which keep spinning for a while after
//! every parallel ATen op. A second pool (rayon) started right after would fight them for the
//! cores: measured on 2 cores, 26% of the fused conv's backward went to libgomp spinning. So the
//! kernels open their parallel regions with `GOMP_parallel`, exactly as `at::parallel_for` does
//! with the OpenMP backend: the same threads, the same `torch.set_num_threads`, no oversubscription.
//! The shared library resolves `libgomp.so.1` to the copy torch has already loaded.

use crate::error::{CrnasError, Result};
use std::ffi::c_void;
use std::os::raw::{c_int, c_uint};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

extern "C" {
    fn GOMP_parallel(f: extern "C" fn(*mut c_void), data: *mut c_void, num_threads: c_uint, flags: c_uint);
    fn omp_in_parallel() -> c_int;
}

struct Region<'a> {
    body: &'a (dyn Fn() + Sync),
    panicked: AtomicBool,
}

extern "C" fn trampoline(data: *mut c_void) {
    // SAFETY: `data` is the `Region` that `run_on_team` keeps alive until GOMP_parallel returns.
    let region = unsafe { &*(data as *const Region) };
    // A panic must not unwind into C; record it and report an error after the region.
    if catch_unwind(AssertUnwindSafe(region.body)).is_err() {
        region.panicked.store(true, Ordering::SeqCst);
    }
}

/// Run `body` once on each of `threads` team threads (the caller is one of them).
fn run_on_team(threads: usize, body: &(dyn Fn() + Sync)) -> Result<()> {
    let region = Region { body, panicked: AtomicBool::new(false) };
    // SAFETY: plain libgomp entry point; `region` outlives the call, which joins all threads.
    unsafe { GOMP_parallel(trampoline, &region as *const Region as *mut c_void, threads as c_uint, 0) };
    if region.panicked.load(Ordering::SeqCst) {
        return Err(CrnasError::value("native kernel", "to finish", "an internal error (please report it)"));
    }
    Ok(())
}

/// Threads torch uses for intra-op parallelism (`torch.get_num_threads()`).
pub fn num_threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

/// Run `body(state, task)` for every task in `0..tasks`, distributing tasks dynamically over at
/// most `threads` of torch's intra-op threads (pass [`num_threads`]). Each thread builds one
/// `state` with `init` (its scratch buffers) and reuses it for all its tasks; `init` runs at most
/// `threads` times. Inside an enclosing parallel region, or with one thread, everything runs on
/// the caller.
pub fn for_each_task<S>(
    threads: usize,
    tasks: usize,
    init: impl Fn() -> S + Sync,
    body: impl Fn(&mut S, usize) + Sync,
) -> Result<()> {
    let threads = threads.min(tasks);
    // SAFETY: query only.
    let nested = unsafe { omp_in_parallel() } != 0;
    if threads <= 1 || nested {
        let mut state = init();
        for task in 0..tasks {
            body(&mut state, task);
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    run_on_team(threads, &|| {
        let mut state = init();
        loop {
            let task = next.fetch_add(1, Ordering::Relaxed);
            if task >= tasks {
                break;
            }
            body(&mut state, task);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_with_one_state_per_thread() {
        let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        let (inits, counted) = (AtomicUsize::new(0), AtomicUsize::new(0));
        for_each_task(
            2,
            1000,
            || {
                inits.fetch_add(1, Ordering::Relaxed);
                0usize
            },
            |count, t| {
                hits[t].fetch_add(1, Ordering::Relaxed);
                *count += 1;
                counted.fetch_add(1, Ordering::Relaxed);
            },
        )
        .unwrap();
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        assert_eq!(counted.load(Ordering::Relaxed), 1000);
        assert!((1..=2).contains(&inits.load(Ordering::Relaxed)));
    }

    #[test]
    fn a_panicking_task_becomes_an_error() {
        tch::set_num_threads(2);
        let r = for_each_task(2, 8, || (), |_, t| {
            if t == 5 {
                panic!("boom");
            }
        });
        assert!(r.is_err());
    }
}
