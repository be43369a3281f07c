//! `Accept-Encoding` negotiation (`api_service::request::negotiate::negotiate`) against a
//! reference model written independently from RFC 9110 §12.5.3: the chosen coding is
//! never one the header refuses (q=0), has the highest quality on offer (ties: dcz, zstd,
//! gzip, identity), `dcz` only when a delta is ready, and `None` comes only when every
//! coding on offer, identity included, is refused.
#![no_main]

use api_service::request::negotiate::{Choice, negotiate};
use shared::snapshot::Codec;
use libfuzzer_sys::fuzz_target;

/// Quality of one list member in thousandths, or `None` when its `q` is malformed
/// (such members are ignored). Parsed differently from the service, on purpose: `q` must
/// match `0(.ddd)?` or `1(.000)?` with at most three decimals.
fn quality(params: &str) -> Option<u32> {
    let Some(q) = params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("q").then(|| value.trim())
    }) else {
        return Some(1000);
    };
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u32>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Every choice, in the order of preference at equal quality.
const CHOICES: [Choice; 4] = [
    Choice::Delta,
    Choice::Whole(Codec::Zstd),
    Choice::Whole(Codec::Gzip),
    Choice::Whole(Codec::Identity),
];

/// Quality the header gives `choice`: its own members (the most generous one wins),
/// else `*`, else 0 for a content coding and 1 for identity.
fn model(header: &str, choice: Choice) -> u32 {
    let names: &[&str] = match choice {
        Choice::Delta => &["dcz"],
        Choice::Whole(Codec::Zstd) => &["zstd"],
        Choice::Whole(Codec::Gzip) => &["gzip", "x-gzip"],
        Choice::Whole(Codec::Identity) => &["identity"],
    };
    let (mut own, mut any) = (None::<u32>, None::<u32>);
    for member in header.split(',') {
        let (coding, params) = member.split_once(';').unwrap_or((member, ""));
        let Some(q) = quality(params) else { continue };
        let coding = coding.trim();
        if names.iter().any(|n| coding.eq_ignore_ascii_case(n)) {
            own = Some(own.map_or(q, |o| o.max(q)));
        } else if coding == "*" {
            any = Some(any.map_or(q, |o| o.max(q)));
        }
    }
    let identity = choice == Choice::Whole(Codec::Identity);
    own.or(any).unwrap_or(if identity { 1 } else { 0 })
}

fuzz_target!(|input: (bool, &str)| {
    let (delta_ready, header) = input;
    let chosen = negotiate(Some(header), delta_ready);
    let on_offer: Vec<Choice> = CHOICES
        .into_iter()
        .filter(|&c| delta_ready || c != Choice::Delta)
        .collect();
    let q = |c| model(header, c);
    let rank = |c| CHOICES.iter().position(|&x| x == c).unwrap_or(usize::MAX);
    match chosen {
        None => {
            for choice in &on_offer {
                assert_eq!(
                    q(*choice),
                    0,
                    "{header:?}: None although {choice:?} is acceptable"
                );
            }
        }
        Some(chosen) => {
            assert!(
                on_offer.contains(&chosen),
                "{header:?}: chose {chosen:?}, which is not on offer"
            );
            assert!(
                q(chosen) > 0,
                "{header:?}: chose {chosen:?}, which the header refuses"
            );
            for &other in &on_offer {
                // Strictly better, or as good and earlier in the preference order.
                let ahead = rank(other) < rank(chosen);
                assert!(
                    q(other) < q(chosen) || (q(other) == q(chosen) && !ahead) || other == chosen,
                    "{header:?}: chose {chosen:?} (q={}) over {other:?} (q={})",
                    q(chosen),
                    q(other)
                );
            }
        }
    }
});
