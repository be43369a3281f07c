//! How far a published order and its scores are from the exact model's: Kendall τ (by
//! counting inversions), the overlap of the top 100 and top 1,000, the largest rank shift
//! in the top 100 and the largest score error.

use crate::document::Document;

/// How close a published order and its scores are to the exact model's.
pub(crate) struct Fidelity {
    pub(crate) kendall_tau: f64,
    pub(crate) top100: f64,
    pub(crate) top1000: f64,
    /// Largest rank change of an offer of the exact top 100.
    pub(crate) top100_shift: usize,
    pub(crate) max_score_error: f64,
}

pub(crate) fn fidelity(
    document: &Document,
    exact: &[f32],
    order: &[usize],
    scores: &[f64],
) -> Fidelity {
    let exact: Vec<f64> = exact.iter().map(|&s| f64::from(s)).collect();
    let exact_order = document.ranked(&exact);
    let n = order.len();
    let mut exact_rank = vec![0; n];
    for (rank, &i) in exact_order.iter().enumerate() {
        exact_rank[i] = rank;
    }
    let mut published_rank = vec![0; n];
    for (rank, &i) in order.iter().enumerate() {
        published_rank[i] = rank;
    }
    let mut sequence: Vec<usize> = order.iter().map(|&i| exact_rank[i]).collect();
    let discordant = inversions(&mut sequence) as f64;
    let pairs = (n * n.saturating_sub(1) / 2).max(1) as f64;
    let overlap = |k: usize| {
        let k = k.min(n);
        let top = |o: &[usize]| {
            o[..k]
                .iter()
                .copied()
                .collect::<std::collections::HashSet<_>>()
        };
        top(order).intersection(&top(&exact_order)).count() as f64 / k.max(1) as f64
    };
    Fidelity {
        kendall_tau: 1.0 - 2.0 * discordant / pairs,
        top100: overlap(100),
        top1000: overlap(1000),
        top100_shift: exact_order
            .iter()
            .take(100)
            .map(|&i| published_rank[i].abs_diff(exact_rank[i]))
            .max()
            .unwrap_or(0),
        max_score_error: (0..n)
            .map(|i| (scores[i] - exact[i]).abs())
            .fold(0.0, f64::max),
    }
}

/// Pairs out of order in `values` (merge sort; sorts `values`).
fn inversions(values: &mut [usize]) -> u64 {
    let n = values.len();
    if n < 2 {
        return 0;
    }
    let (mut count, middle) = (0, n / 2);
    count += inversions(&mut values[..middle]);
    count += inversions(&mut values[middle..]);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, middle);
    while i < middle && j < n {
        if values[i] <= values[j] {
            merged.push(values[i]);
            i += 1;
        } else {
            merged.push(values[j]);
            count += (middle - i) as u64;
            j += 1;
        }
    }
    merged.extend_from_slice(&values[i..middle]);
    merged.extend_from_slice(&values[j..]);
    values.copy_from_slice(&merged);
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inversions_count_discordant_pairs() {
        assert_eq!(inversions(&mut [0, 1, 2, 3]), 0);
        assert_eq!(inversions(&mut [3, 2, 1, 0]), 6);
        assert_eq!(inversions(&mut [1, 0, 3, 2]), 2);
    }
}
