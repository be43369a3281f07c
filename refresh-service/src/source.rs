//! Reading the live offers out of PostgreSQL.
//!
//! Rows are streamed (never collected into a `Vec` of rows): each one is serialised at
//! once into a shared JSON arena, its ranking features are computed, and it is hashed
//! into the content hash. What stays in memory per offer is its JSON text, its id and
//! six floats.

use std::ops::Range;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{PgPool, Row, postgres::PgRow};

use crate::rank::{self, FEATURES, OfferSignals};

/// The active offers, in id order; `now` decides which are active.
const ACTIVE_OFFERS: &str = "
    select id, merchant_id, merchant_name, title, description, category,
           price::text, original_price::text,
           case when original_price > 0
                then greatest(round((original_price - price) * 100 / original_price, 1), 0)::float8
           end as discount_pct,
           rtrim(currency), image_url, starts_at, ends_at, updated_at
    from ofertas
    where active and starts_at <= $1 and (ends_at is null or ends_at > $1)
    order by id";

/// One offer as it appears in the document, minus its score.
#[derive(Serialize)]
struct OfferJson<'r> {
    id: i64,
    merchant_id: i64,
    merchant_name: &'r str,
    title: &'r str,
    description: Option<&'r str>,
    category: &'r str,
    price: &'r str,
    original_price: Option<&'r str>,
    discount_pct: Option<f64>,
    currency: &'r str,
    image_url: Option<&'r str>,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
}

/// The live offers, serialised and featurised, in id order.
#[derive(Default)]
pub struct OfferSet {
    json: Vec<u8>,
    spans: Vec<Range<usize>>,
    ids: Vec<i64>,
    features: Vec<f32>,
    content_hash: String,
}

impl OfferSet {
    /// Number of offers.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no offers.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The JSON object of offer `index` (without its score), as `{…}`.
    pub fn object(&self, index: usize) -> &[u8] {
        &self.json[self.spans[index].clone()]
    }

    /// Offer ids, in id order.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// Row-major `[len, FEATURES]` model input.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// BLAKE3 (hex) over every offer's JSON in id order: equal hashes, unchanged offers.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// Total bytes of offer JSON held.
    pub fn json_bytes(&self) -> usize {
        self.json.len()
    }

    fn push(
        &mut self,
        row: &PgRow,
        now: DateTime<Utc>,
        hasher: &mut blake3::Hasher,
    ) -> Result<(), sqlx::Error> {
        let offer = OfferJson {
            id: row.try_get(0)?,
            merchant_id: row.try_get(1)?,
            merchant_name: row.try_get(2)?,
            title: row.try_get(3)?,
            description: row.try_get(4)?,
            category: row.try_get(5)?,
            price: row.try_get(6)?,
            original_price: row.try_get(7)?,
            discount_pct: row.try_get(8)?,
            currency: row.try_get(9)?,
            image_url: row.try_get(10)?,
            starts_at: row.try_get(11)?,
            ends_at: row.try_get(12)?,
        };
        let signals = OfferSignals {
            price: offer.price.parse().unwrap_or(0.0),
            discount_pct: offer.discount_pct,
            ends_at: offer.ends_at,
            updated_at: row.try_get(13)?,
            has_image: offer.image_url.is_some(),
            category: offer.category,
        };
        let start = self.json.len();
        serde_json::to_writer(&mut self.json, &offer)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        hasher.update(&self.json[start..]);
        hasher.update(b"\n");
        self.spans.push(start..self.json.len());
        self.ids.push(offer.id);
        self.features
            .extend_from_slice(&rank::features(&signals, now));
        Ok(())
    }
}

/// Streams the offers active at `now` in one read-only transaction.
///
/// # Errors
/// The database error, when Postgres is unreachable, the query fails or a row does not
/// decode.
#[tracing::instrument(skip_all, fields(offers.count = tracing::field::Empty))]
pub async fn load_active(pool: &PgPool, now: DateTime<Utc>) -> Result<OfferSet, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let mut set = OfferSet::default();
    let mut hasher = blake3::Hasher::new();
    {
        let mut rows = sqlx::query(ACTIVE_OFFERS).bind(now).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            set.push(&row, now, &mut hasher)?;
        }
    }
    tx.rollback().await?;
    debug_assert_eq!(set.features.len(), set.len() * FEATURES);
    set.content_hash = hasher.finalize().to_hex().to_string();
    tracing::Span::current().record("offers.count", set.len());
    Ok(set)
}
