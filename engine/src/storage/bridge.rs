//! How the blocking [`super::Storage`] methods wait without stalling async code.
//!
//! A storage call blocks its thread, like the `std::fs` call it stands for. Called on a
//! worker of a multi-threaded tokio runtime (async code: a request handler, a decision
//! run's SQL steps), the worker's other tasks move to another thread first
//! (`block_in_place`), so a slow disk or bucket never holds up the requests that worker
//! serves. Elsewhere (a plain thread, tokio's blocking pool, a single-threaded runtime
//! where nothing else could run meanwhile) the call simply blocks.
//!
//! Object-store calls are futures: each object store drives them on an [`IoRuntime`] of
//! its own, which outlives its calls and the HTTP connections they open, and which
//! ends with the store. The caller waits on the task's handle without entering any
//! runtime, so this works from every kind of thread (`Handle::block_on` would panic
//! inside a runtime).

use std::future::Future;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// Runs `work`, which blocks on I/O, off the async workers (see the module's text).
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The runtime one object store's calls run on.
#[derive(Debug)]
pub(crate) struct IoRuntime {
    /// Taken on drop: a runtime dropped in async code must be shut down in the
    /// background.
    runtime: Option<Runtime>,
}

impl IoRuntime {
    pub(crate) fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("assay-storage")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs `work` to completion and returns its output.
    pub(crate) fn block_on<F>(&self, work: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("runs until dropped");
        let task = runtime.spawn(work);
        match blocking(|| futures::executor::block_on(task)) {
            Ok(output) => output,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a storage task was cancelled: {e}"),
        }
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// A blocking call on the only worker leaves the runtime's other tasks running: a
    /// task spawned before it blocks completes while it waits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_call_on_a_worker_lets_its_other_tasks_run() {
        let on_the_worker = tokio::spawn(async {
            let ran = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&ran);
            let other = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
            // Nested, as an object store's call is inside a storage method.
            let seen = blocking(|| {
                blocking(|| {
                    let started = std::time::Instant::now();
                    while !ran.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(5)
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    ran.load(Ordering::SeqCst)
                })
            });
            other.await.unwrap();
            seen
        });
        assert!(
            on_the_worker.await.unwrap(),
            "the worker's other task waited for the blocking call"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_io_runtime_serves_and_drops_inside_any_runtime() {
        let io = IoRuntime::start().unwrap();
        assert_eq!(io.block_on(async { 6 * 7 }), 42);
        drop(io);
    }
}
