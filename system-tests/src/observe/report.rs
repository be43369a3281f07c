//! What a load run saw, request by request, and the assertions scenarios make on it.

use std::time::Instant;

use super::load::Sample;
use crate::stack::REPLICAS;

/// Every request the load made.
pub struct LoadReport {
    /// The requests, in the order they were answered.
    pub samples: Vec<Sample>,
}

impl LoadReport {
    /// Every request got a 200 with a body that matches its ETag and stored metadata.
    pub fn assert_all_served(&self) {
        let failures: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.status != 200 || s.problem.is_some())
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} requests failed; first ones: {:#?}",
            failures.len(),
            self.samples.len(),
            &failures[..failures.len().min(5)]
        );
        for replica in 0..REPLICAS {
            assert!(
                self.samples.iter().any(|s| s.replica == replica),
                "replica {replica} got no load"
            );
        }
    }

    /// Requests sent to `replica` between `from` and `to`.
    pub fn sent_between(&self, replica: usize, from: Instant, to: Instant) -> usize {
        self.samples
            .iter()
            .filter(|s| s.replica == replica && s.sent >= from && s.sent < to)
            .count()
    }

    /// Versions `replica` served, in order, each once.
    pub fn versions(&self, replica: usize) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        for version in self
            .samples
            .iter()
            .filter(|s| s.replica == replica)
            .filter_map(|s| s.version.as_ref())
        {
            if order.last() != Some(version) {
                order.push(version.clone());
            }
        }
        order
    }

    /// Every replica served versions of `expected` only, in that order (never going
    /// back), starting with the first and ending with the last; an intermediate one may
    /// have been current too briefly for the load to see it.
    pub fn assert_served_in_order(&self, expected: &[&str]) {
        for replica in 0..REPLICAS {
            let served = self.versions(replica);
            let mut allowed = expected.iter();
            let in_order = served.iter().all(|v| allowed.by_ref().any(|e| e == v));
            assert!(
                in_order
                    && served.first().map(String::as_str) == expected.first().copied()
                    && served.last().map(String::as_str) == expected.last().copied(),
                "replica {replica} served {served:?}; expected, in order, {expected:?}"
            );
        }
    }
}

impl LoadReport {
    /// Every replica served versions in the order they were made (increasing sequence
    /// numbers, never going back), ending with `last`.
    pub fn assert_served_in_sequence(&self, last: &str) {
        let seq = |v: &str| -> u64 {
            v.split_once('-')
                .and_then(|(seq, _)| seq.parse().ok())
                .unwrap_or_else(|| panic!("version {v} has no sequence number"))
        };
        for replica in 0..REPLICAS {
            let served = self.versions(replica);
            assert!(
                served.windows(2).all(|w| seq(&w[0]) < seq(&w[1]))
                    && served.last().map(String::as_str) == Some(last),
                "replica {replica} served {served:?}, ending with {last} expected"
            );
        }
    }
}
