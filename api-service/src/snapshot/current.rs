//! The snapshot being served, swapped atomically when a new one is prepared, plus what
//! `/health`, `/ready` and `/metrics` report about it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwapOption;

use crate::snapshot::prepared::Snapshot;

/// The snapshot being served (none before the first one), the state of Redis as the last
/// read saw it, and the version last refused as corrupt (not fetched again).
#[derive(Default)]
pub struct CurrentSnapshot {
    snapshot: ArcSwapOption<Snapshot>,
    redis_up: AtomicBool,
    refused: Mutex<Option<String>>,
}

impl CurrentSnapshot {
    /// The snapshot being served, if any.
    pub fn get(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// The snapshot being served, borrowed for the moment: unlike [`Self::get`] it
    /// touches no reference count that every request thread shares, so the hot path
    /// uses it. Keep it briefly (a thread has few fast guards).
    pub fn load(&self) -> arc_swap::Guard<Option<Arc<Snapshot>>> {
        self.snapshot.load()
    }

    /// Serves `snapshot` from now on; requests already answering keep the one they hold.
    pub fn replace(&self, snapshot: Snapshot) {
        self.snapshot.store(Some(Arc::new(snapshot)));
    }

    /// The version served, if any.
    pub fn version(&self) -> Option<String> {
        self.load().as_ref().map(|s| s.meta.version.clone())
    }

    /// Seconds since the served snapshot was generated.
    pub fn age_seconds(&self) -> Option<f64> {
        self.load().as_ref().map(|s| {
            let age = chrono::Utc::now() - s.meta.generated_at;
            (age.num_milliseconds() as f64 / 1000.0).max(0.0)
        })
    }

    /// Whether the last Redis read succeeded.
    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    /// Records whether the last Redis read succeeded.
    pub fn set_redis_up(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
    }

    /// Whether `version` was refused as corrupt (so it is not fetched again and again).
    pub fn is_refused(&self, version: &str) -> bool {
        self.refused
            .lock()
            .is_ok_and(|refused| refused.as_deref() == Some(version))
    }

    /// Remembers that `version` was refused as corrupt.
    pub fn refuse(&self, version: &str) {
        if let Ok(mut refused) = self.refused.lock() {
            *refused = Some(version.to_owned());
        }
    }
}
