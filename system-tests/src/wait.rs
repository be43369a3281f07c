//! Waiting for something to happen: a condition polled until it holds, failing the test
//! with what it waited for once the deadline passes. The one way the tests wait; a fixed
//! sleep never stands for "it has arrived".

use std::time::Duration;

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it yields a value and returns it; fails the test after `within`.
/// The probe runs at least once, even with a zero `within`.
pub async fn until<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `condition` holds; fails the test after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    until(within, what, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await;
}

/// [`eventually`] for set-up code that runs on a thread of its own (starting servers
/// with blocking calls).
pub fn poll_until(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
