//! Runs object-store calls for the blocking [`super::Storage`] methods.
//!
//! The calls run on a runtime of their own, and the caller waits on the task's handle
//! without entering any runtime: this works from plain threads and from inside tokio
//! runtimes of either flavour (`Handle::block_on` would panic there). Its HTTP
//! connections belong to this runtime alone, which outlives every caller.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("assay-storage")
            .enable_all()
            .build()
            .expect("the storage runtime starts")
    })
}

/// Runs `work` to completion and returns its output.
pub(crate) fn block_on<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = runtime().spawn(work);
    match futures::executor::block_on(task) {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a storage task was cancelled: {e}"),
    }
}
