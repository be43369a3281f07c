//! The snapshot document, defined once: refresh-service serialises these types (the
//! header, then each offer with its score), and api-service documents the route that
//! serves them with their poem-openapi schema (feature `openapi`), so what is written and
//! what `/openapi.json` declares cannot drift apart.
//!
//! Offers borrow their text from the row they were read from ([`Text`]): serialising
//! 7,000 to 1,000,000 offers allocates nothing per field.

mod text;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use text::Text;

/// The snapshot document: the live offers, ranked.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct SnapshotDocument<'d> {
    /// Snapshot version.
    pub version: Text<'d>,
    /// When the snapshot was generated (`2026-11-22T15:00:00.123Z`).
    #[serde(with = "crate::snapshot::millis")]
    pub generated_at: DateTime<Utc>,
    /// Number of offers, the length of `ofertas`.
    pub count: u64,
    /// The live offers by score descending, then id ascending.
    pub ofertas: Vec<Oferta<'d>>,
}

/// One live offer of the snapshot document: the offer and its score.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Oferta<'d> {
    /// The offer as read from the database.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", oai(flatten))]
    pub offer: Offer<'d>,
    /// Ranking score, 0..1.
    pub score: f64,
}

/// An offer as the document shows it, without its score: what refresh-service
/// serialises (and hashes) per row before ranking orders the offers.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Offer<'d> {
    /// Offer id.
    pub id: i64,
    /// Merchant id.
    pub merchant_id: i64,
    /// Merchant name.
    pub merchant_name: Text<'d>,
    /// Title.
    pub title: Text<'d>,
    /// Description.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub description: Option<Text<'d>>,
    /// Category.
    pub category: Text<'d>,
    /// Price, a decimal string.
    pub price: Text<'d>,
    /// Price before the discount, a decimal string.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub original_price: Option<Text<'d>>,
    /// Discount in percent (one decimal).
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub discount_pct: Option<f64>,
    /// ISO 4217 currency code.
    pub currency: Text<'d>,
    /// Image URL.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub image_url: Option<Text<'d>>,
    /// Start of the offer.
    pub starts_at: DateTime<Utc>,
    /// End of the offer; open-ended when null.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub ends_at: Option<DateTime<Utc>>,
}

impl SnapshotDocument<'_> {
    /// The document's JSON up to its first offer (`{"version":…,"ofertas":[`): a
    /// writer streams the offers after it and closes the document with
    /// [`DOCUMENT_END`].
    ///
    /// # Errors
    /// Those of `serde_json` (none for these fields; the writer is a `Vec`).
    pub fn head(&self) -> Result<Vec<u8>, serde_json::Error> {
        let header = SnapshotDocument {
            ofertas: Vec::new(),
            ..self.clone()
        };
        let mut json = serde_json::to_vec(&header)?;
        json.truncate(json.len() - DOCUMENT_END.len());
        Ok(json)
    }
}

/// What closes the offers array and the document.
pub const DOCUMENT_END: &[u8] = b"]}";

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer<'static> {
        let at = DateTime::parse_from_rfc3339("2026-11-22T15:00:00Z")
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or_default();
        Offer {
            id: 1,
            merchant_id: 9,
            merchant_name: Text::from("Tienda"),
            title: Text::from("Café"),
            description: None,
            category: Text::from("food"),
            price: Text::from("12.50"),
            original_price: Some(Text::from("20.00")),
            discount_pct: Some(37.5),
            currency: Text::from("USD"),
            image_url: None,
            starts_at: at,
            ends_at: None,
        }
    }

    #[test]
    fn a_document_streamed_as_head_offers_and_end_is_the_document_serialised() {
        let document = SnapshotDocument {
            version: Text::from("3-abc"),
            generated_at: DateTime::from_timestamp_millis(1_795_100_400_123).unwrap_or_default(),
            count: 1,
            ofertas: vec![Oferta {
                offer: offer(),
                score: 0.83,
            }],
        };
        let whole = serde_json::to_string(&document).unwrap_or_default();
        let mut streamed = document.head().unwrap_or_default();
        let mut object = serde_json::to_vec(&offer()).unwrap_or_default();
        object.pop();
        streamed.extend_from_slice(&object);
        streamed.extend_from_slice(br#","score":0.83}"#);
        streamed.extend_from_slice(DOCUMENT_END);
        assert_eq!(String::from_utf8_lossy(&streamed), whole);
        assert!(
            whole.starts_with(r#"{"version":"3-abc","generated_at":"2026-"#),
            "{whole}"
        );
        assert!(whole.contains(r#""price":"12.50","original_price":"20.00","discount_pct":37.5"#));
    }
}
