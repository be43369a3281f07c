//! Cleaning up after a test from `Drop`, where nothing can be awaited: the test's own
//! runtime may be the one dropping the value (and is blocked while it does), so the
//! clean-up runs on a thread of its own with a runtime of its own, and is waited for.

/// Runs the future `clean_up` makes to its end on a new thread and runtime; gives up
/// silently when no runtime can be built (a clean-up is best effort).
pub(crate) fn run_to_end<F>(clean_up: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(clean_up());
        }
    })
    .join()
    .ok();
}
