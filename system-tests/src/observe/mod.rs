//! Watching a deployment under fault from outside: a steady GET load on every replica
//! that checks each body against its ETag and the version's stored metadata ([`Load`]), a
//! reader of the raw Redis keys that checks the current snapshot is never torn
//! ([`Checker`]), and the refresh log's proof that refreshes never overlap
//! ([`assert_one_refresh_at_a_time`]).

mod checker;
mod document;
mod load;
mod meta_book;
mod refresh_log;
mod report;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use checker::{CheckReport, Checker};
pub use load::{Load, Sample};
pub use meta_book::MetaBook;
pub use refresh_log::{assert_one_refresh_at_a_time, parse_debug_duration};
pub use report::LoadReport;

/// `mutex`'s data, whether or not a panicking holder poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
