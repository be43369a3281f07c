//! The snapshot document as the API serves it, split into its header and its offers'
//! records without re-encoding them, so that re-ranked variants can be rendered byte for
//! byte as the refresher would write them.

use std::ops::Range;
use std::path::Path;

use anyhow::{Context as _, ensure};
use chrono::{DateTime, Utc};
use serde::Deserialize;

const OFFERS_START: &[u8] = b"\"ofertas\":[";
const SCORE_FIELD: &[u8] = b",\"score\":";

/// A snapshot document split into its header and its offers' records.
pub(crate) struct Document {
    pub(crate) text: Vec<u8>,
    /// `{"version":…,"ofertas":[`.
    header: Range<usize>,
    pub(crate) generated_at: DateTime<Utc>,
    pub(crate) offers: Vec<Offer>,
}

/// One offer: where its record is, and the ranking inputs the document carries.
pub(crate) struct Offer {
    pub(crate) id: i64,
    /// The record up to its score: `{"id":…,"ends_at":…` (`,"score":…}` follows).
    fields: Range<usize>,
    pub(crate) price: f64,
    pub(crate) discount_pct: Option<f64>,
    pub(crate) ends_at: Option<DateTime<Utc>>,
    pub(crate) has_image: bool,
    pub(crate) category: String,
}

#[derive(Deserialize)]
struct Header {
    generated_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct OfferFields {
    id: i64,
    category: String,
    price: String,
    discount_pct: Option<f64>,
    image_url: Option<String>,
    ends_at: Option<DateTime<Utc>>,
}

impl Document {
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(text).with_context(|| format!("parsing {}", path.display()))
    }

    fn parse(text: Vec<u8>) -> anyhow::Result<Self> {
        let start = find(&text, OFFERS_START).context("no \"ofertas\" array")? + OFFERS_START.len();
        let mut header = text[..start].to_vec();
        header.extend_from_slice(b"]}");
        let Header { generated_at } = serde_json::from_slice(&header)?;
        let mut offers = Vec::new();
        let mut at = start;
        while text.get(at) != Some(&b']') {
            ensure!(
                text.get(at) == Some(&b'{'),
                "expected an offer at byte {at}"
            );
            let end = object_end(&text, at)
                .with_context(|| format!("unterminated offer at byte {at}"))?;
            let object = &text[at..end];
            let fields: OfferFields = serde_json::from_slice(object)?;
            let score = rfind(object, SCORE_FIELD)
                .with_context(|| format!("offer {} has no score", fields.id))?;
            offers.push(Offer {
                id: fields.id,
                fields: at..at + score,
                price: fields.price.parse().unwrap_or(0.0),
                discount_pct: fields.discount_pct,
                ends_at: fields.ends_at,
                has_image: fields.image_url.is_some(),
                category: fields.category,
            });
            at = end;
            if text.get(at) == Some(&b',') {
                at += 1;
            }
        }
        ensure!(&text[at..] == b"]}", "unexpected bytes after the offers");
        Ok(Self {
            header: 0..start,
            text,
            generated_at,
            offers,
        })
    }

    pub(crate) fn fields(&self, index: usize) -> &[u8] {
        &self.text[self.offers[index].fields.clone()]
    }

    /// The document with the offers in `order` (indexes), each with its score in `scores`.
    pub(crate) fn render(&self, order: &[usize], scores: &[f64]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 1024);
        out.extend_from_slice(&self.text[self.header.clone()]);
        let mut number = ryu::Buffer::new();
        for (n, &index) in order.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.fields(index));
            out.extend_from_slice(SCORE_FIELD);
            out.extend_from_slice(number.format_finite(scores[index]).as_bytes());
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Offer indexes by `scores` descending, then id ascending: the document's order rule.
    pub(crate) fn ranked(&self, scores: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.offers.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            scores[b]
                .total_cmp(&scores[a])
                .then(self.offers[a].id.cmp(&self.offers[b].id))
        });
        order
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The index just past the `}` that closes the object starting at `start`. Offers hold no
/// nested objects or arrays; braces inside strings are skipped.
fn object_end(text: &[u8], start: usize) -> Option<usize> {
    let (mut in_string, mut escaped) = (false, false);
    for (i, &byte) in text.iter().enumerate().skip(start + 1) {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'}') => return Some(i + 1),
            (false, _, b'{' | b'[') => return None,
            (false, _, _) => {}
        }
    }
    None
}

pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_renders_back_to_its_bytes() -> anyhow::Result<()> {
        let text = concat!(
            r#"{"version":"1-a","generated_at":"2026-11-30T15:00:00.000Z","count":2,"ofertas":["#,
            r#"{"id":2,"category":"Moda","price":"1.00","discount_pct":null,"image_url":null,"#,
            r#""ends_at":null,"title":"a } \" {","score":0.5},"#,
            r#"{"id":1,"category":"Moda","price":"2.00","discount_pct":10.0,"image_url":"x","#,
            r#""ends_at":"2026-12-01T04:59:00Z","score":0.25}]}"#
        )
        .as_bytes();
        let document = Document::parse(text.to_vec())?;
        assert_eq!(document.offers.len(), 2);
        let scores = [0.5, 0.25];
        assert_eq!(document.render(&document.ranked(&scores), &scores), text);
        Ok(())
    }
}
