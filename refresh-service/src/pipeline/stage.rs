//! Timing the stages of one refresh attempt (query, rank, compress, write, publish): each
//! runs inside its own span, and when it succeeds its duration goes to the
//! `refresh_duration_seconds` metric and to the attempt's summary log line.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::{Instrument, Span};

use crate::report::metrics::{RefreshMetrics, Stage};

/// The stages one attempt has run so far and how long each took.
pub struct Stages<'a> {
    metrics: &'a RefreshMetrics,
    took: Vec<(Stage, Duration)>,
}

impl<'a> Stages<'a> {
    /// No stage run yet; durations are recorded in `metrics`.
    pub fn new(metrics: &'a RefreshMetrics) -> Self {
        Self {
            metrics,
            took: Vec::with_capacity(5),
        }
    }

    /// Runs `work` as `stage` inside `span` (the stage's own, with its fields; `work` may
    /// record them through `Span::current()`), timing it.
    ///
    /// # Errors
    /// The error of `work`; a stage that fails is not recorded.
    pub async fn run<T, E>(
        &mut self,
        stage: Stage,
        span: Span,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = work.instrument(span).await;
        if result.is_ok() {
            let took = started.elapsed();
            self.metrics.stage(stage, took);
            self.took.push((stage, took));
        }
        result
    }

    /// Milliseconds `stage` took, 0 when it has not run.
    pub fn millis(&self, stage: Stage) -> u64 {
        self.took
            .iter()
            .find(|(ran, _)| *ran == stage)
            .map_or(0, |(_, took)| took.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stage_is_timed_and_only_success_is_recorded() {
        let metrics = RefreshMetrics::default();
        let mut stages = Stages::new(&metrics);
        let ranked = stages
            .run(Stage::Rank, tracing::info_span!("rank"), async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, ()>(7)
            })
            .await;
        assert_eq!(ranked, Ok(7));
        let failed = stages
            .run(Stage::Write, Span::none(), async {
                Err::<(), _>("refused")
            })
            .await;
        assert_eq!(failed, Err("refused"));
        assert!(stages.millis(Stage::Rank) >= 20);
        assert_eq!(stages.millis(Stage::Write), 0);
        let rendered = metrics.render();
        assert!(
            rendered.contains("refresh_duration_seconds_count{stage=\"rank\"} 1"),
            "{rendered}"
        );
        assert!(!rendered.contains("stage=\"write\""), "{rendered}");
    }
}
