//! `API_FETCH_JITTER_MS`: before it fetches a new version's bodies, a replica waits a
//! random time drawn once per version, so a large fleet does not fetch them from one
//! Redis shard at the same instant (README, "A fleet of API replicas", has the figures).
//! A replica that holds no snapshot yet never waits: being ready comes first.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The wait before fetching a new version, and the version waiting for its turn.
pub struct FetchJitter {
    window: Duration,
    waiting: Mutex<Option<(String, Instant)>>,
}

impl FetchJitter {
    /// Waits of up to `window` (none when it is zero).
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            waiting: Mutex::new(None),
        }
    }

    /// Whether fetching `version` must still wait for its turn, drawn when the version
    /// is first seen (by an event or a poll alike). `holding`: whether a snapshot is
    /// served meanwhile.
    pub fn must_wait(&self, version: &str, holding: bool) -> bool {
        if self.window.is_zero() || !holding {
            return false;
        }
        let Ok(mut waiting) = self.waiting.lock() else {
            return false;
        };
        let now = Instant::now();
        match waiting.as_ref() {
            Some((seen, due)) if seen == version => *due > now,
            _ => {
                let due = now + crate::settings::fetch_delay(self.window);
                *waiting = Some((version.to_owned(), due));
                true
            }
        }
    }

    /// Resolves when a waiting version's turn comes (never while none waits).
    pub async fn turn(&self) {
        let now = Instant::now();
        let due = self
            .waiting
            .lock()
            .ok()
            .and_then(|waiting| waiting.as_ref().map(|(_, due)| *due));
        match due {
            Some(due) if due > now => tokio::time::sleep_until(due).await,
            _ => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_new_version_waits_once_for_its_turn_unless_nothing_is_held() {
        let jitter = FetchJitter::new(Duration::from_secs(3));
        assert!(
            !jitter.must_wait("1-a", false),
            "a replica without a snapshot fetches at once"
        );
        if !jitter.must_wait("2-b", true) {
            return; // drew a zero wait
        }
        jitter.turn().await;
        assert!(!jitter.must_wait("2-b", true), "its turn came");
        assert!(!FetchJitter::new(Duration::ZERO).must_wait("3-c", true));
    }
}
