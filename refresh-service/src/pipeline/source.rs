//! Reading the live offers out of PostgreSQL.
//!
//! Rows are streamed (never collected into a `Vec` of rows). Each one is serialised at
//! once, hashed into the content hash and featurised; what stays in memory per offer is
//! its id, six floats and, up to a limit, its JSON text. Past that limit (a catalogue far
//! larger than usual) the JSON is dropped and the offers are read a second time, in
//! ranked order, inside the same repeatable-read transaction, so both reads see the same
//! rows and memory stays flat whatever the catalogue's size.

use std::io;
use std::ops::Range;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use thiserror::Error;

use shared::document::{Offer, Text};

use crate::pipeline::encode::{DocumentWriter, Ranking};
use crate::pipeline::rank::{self, FEATURES, OfferSignals};

/// Columns of an offer as the document shows it, plus `updated_at` for ranking; each is
/// named as [`OfferRow`] decodes it.
const OFFER_COLUMNS: &str = "
    o.id, o.merchant_id, o.merchant_name, o.title, o.description, o.category,
    o.price::text as price, o.original_price::text as original_price,
    case when o.original_price > 0
         then greatest(round((o.original_price - o.price) * 100 / o.original_price, 1), 0)::float8
    end as discount_pct,
    rtrim(o.currency) as currency, o.image_url, o.starts_at, o.ends_at, o.updated_at";

/// SQLSTATE classes and codes of failures that may pass: connection exceptions (`08`),
/// insufficient resources such as too many connections (`53`), a server shutting down or
/// not accepting connections yet (`57P`), a cancelled (timed out) statement (`57014`) and
/// serialisation failures or deadlocks (`40`).
const TRANSIENT_SQLSTATES: [&str; 5] = ["08", "53", "57P", "57014", "40"];

/// A failure reading the offers or writing them into the document.
#[derive(Debug, Error)]
pub enum SourceError {
    /// Postgres could not be reached, or it failed a statement.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A row did not decode into an offer.
    #[error("an offer row does not decode: {0}")]
    Decode(#[source] sqlx::Error),
    /// An offer could not be serialised as JSON.
    #[error("cannot serialise offer {id} as JSON: {source}")]
    Serialize {
        /// The offer.
        id: i64,
        /// The serialiser's failure.
        #[source]
        source: serde_json::Error,
    },
    /// The offers were written into a document once already; there is no second read.
    #[error("the offers were already written into a document")]
    AlreadyWritten,
    /// An offer of the first read is missing from the second.
    #[error("offer {0} vanished between the two reads")]
    Vanished(i64),
    /// The second read returned another offer than the first at the same rank.
    #[error("second read returned offer {found} where {expected} was expected")]
    Reordered {
        /// The offer of the first read.
        expected: i64,
        /// The offer the second read returned.
        found: i64,
    },
    /// The document's encoders failed.
    #[error("writing the document: {0}")]
    Document(#[source] io::Error),
}

impl SourceError {
    /// Whether reading again shortly may succeed: Postgres unreachable, a dropped
    /// connection, a timeout or a server that is restarting. Everything else (a row that
    /// does not decode, the reads disagreeing, an encoder failure) would fail again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Self::Database(sqlx::Error::Database(e)) => e
                .code()
                .is_some_and(|code| TRANSIENT_SQLSTATES.iter().any(|c| code.starts_with(c))),
            _ => false,
        }
    }
}

/// The offers active at `$1`, in id order.
fn active_offers() -> String {
    format!(
        "select {OFFER_COLUMNS} from ofertas o
         where o.active and o.starts_at <= $1 and (o.ends_at is null or o.ends_at > $1)
         order by o.id"
    )
}

/// The offers `$1` (ids), in that order.
fn offers_in_order() -> String {
    format!(
        "select {OFFER_COLUMNS} from unnest($1::int8[]) with ordinality as r(id, position)
         join ofertas o on o.id = r.id
         order by r.position"
    )
}

/// One offer row: the document's [`Offer`] (without its score, which ranking adds; its
/// text borrowed from the row) and `updated_at`, which only ranking reads.
struct OfferRow<'r> {
    offer: Offer<'r>,
    updated_at: DateTime<Utc>,
}

impl<'r> OfferRow<'r> {
    /// Decodes `row`, whose columns are [`OFFER_COLUMNS`].
    fn decode(row: &'r PgRow) -> Result<Self, SourceError> {
        Self::columns(row).map_err(SourceError::Decode)
    }

    fn columns(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let text = |column| row.try_get::<&str, _>(column).map(Text::from);
        let optional = |column| {
            row.try_get::<Option<&str>, _>(column)
                .map(|text| text.map(Text::from))
        };
        Ok(Self {
            offer: Offer {
                id: row.try_get("id")?,
                merchant_id: row.try_get("merchant_id")?,
                merchant_name: text("merchant_name")?,
                title: text("title")?,
                description: optional("description")?,
                category: text("category")?,
                price: text("price")?,
                original_price: optional("original_price")?,
                discount_pct: row.try_get("discount_pct")?,
                currency: text("currency")?,
                image_url: optional("image_url")?,
                starts_at: row.try_get("starts_at")?,
                ends_at: row.try_get("ends_at")?,
            },
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Appends the offer's JSON object to `out`.
    fn write_to(&self, out: &mut Vec<u8>) -> Result<(), SourceError> {
        serde_json::to_writer(out, &self.offer).map_err(|source| SourceError::Serialize {
            id: self.offer.id,
            source,
        })
    }
}

/// Every offer's JSON text, back to back, while it fits the limit.
#[derive(Default)]
struct HeldJson {
    text: Vec<u8>,
    spans: Vec<Range<usize>>,
}

/// The live offers, featurised, in id order; their JSON is held when it fits.
pub struct OfferSet {
    held: Option<HeldJson>,
    /// Open only when the JSON was not held: the offers are read again from it.
    reread: Option<Transaction<'static, Postgres>>,
    ids: Vec<i64>,
    features: Vec<f32>,
    json_bytes: usize,
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

    /// Total bytes of offer JSON (held or not).
    pub fn json_bytes(&self) -> usize {
        self.json_bytes
    }

    /// Whether the offers' JSON is held in memory (otherwise writing re-reads them).
    pub fn holds_json(&self) -> bool {
        self.held.is_some()
    }

    /// Writes the offers into `document` in `ranking` order, each with its score, from
    /// the JSON held or by reading them again in the same transaction.
    ///
    /// # Errors
    /// A [`SourceError`] of the second read, or [`SourceError::Document`].
    pub async fn write_ranked(
        &mut self,
        ranking: &Ranking,
        document: &mut DocumentWriter,
    ) -> Result<(), SourceError> {
        if let Some(held) = &self.held {
            for &index in &ranking.order {
                let index = index as usize;
                document
                    .offer(&held.text[held.spans[index].clone()], ranking.scores[index])
                    .await
                    .map_err(SourceError::Document)?;
            }
            return Ok(());
        }
        let Some(mut tx) = self.reread.take() else {
            return Err(SourceError::AlreadyWritten);
        };
        let ranked_ids: Vec<i64> = ranking
            .order
            .iter()
            .map(|&index| self.ids[index as usize])
            .collect();
        // A million index probes in score order cost more than one hash join and sort.
        sqlx::query("set local enable_nestloop = off")
            .execute(&mut *tx)
            .await?;
        sqlx::query("set local work_mem = '64MB'")
            .execute(&mut *tx)
            .await?;
        let mut object = Vec::with_capacity(1024);
        {
            let query = offers_in_order();
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(query))
                .bind(&ranked_ids)
                .fetch(&mut *tx);
            for &index in &ranking.order {
                let expected = self.ids[index as usize];
                let row = rows
                    .try_next()
                    .await?
                    .ok_or(SourceError::Vanished(expected))?;
                let offer = OfferRow::decode(&row)?;
                if offer.offer.id != expected {
                    return Err(SourceError::Reordered {
                        expected,
                        found: offer.offer.id,
                    });
                }
                object.clear();
                offer.write_to(&mut object)?;
                document
                    .offer(&object, ranking.scores[index as usize])
                    .await
                    .map_err(SourceError::Document)?;
            }
        }
        tx.rollback().await?;
        Ok(())
    }
}

/// Streams the offers active at `now` in one read-only, repeatable-read transaction, with
/// their features as of `ranked_at` ([`rank::ranking_time`]). Their JSON is held while it
/// stays within `held_json_limit` bytes; past it the transaction stays open for
/// [`OfferSet::write_ranked`] to read them again.
///
/// # Errors
/// [`SourceError::Database`] when Postgres is unreachable or the query fails,
/// [`SourceError::Decode`] or [`SourceError::Serialize`] for an offer that cannot be read.
pub async fn load_active(
    pool: &PgPool,
    now: DateTime<Utc>,
    ranked_at: DateTime<Utc>,
    held_json_limit: usize,
) -> Result<OfferSet, SourceError> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let mut held = Some(HeldJson::default());
    let mut scratch = Vec::new();
    let (mut ids, mut features, mut json_bytes) = (Vec::new(), Vec::new(), 0);
    let mut hasher = blake3::Hasher::new();
    {
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(active_offers()))
            .bind(now)
            .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let offer = OfferRow::decode(&row)?;
            let out = match held.as_mut() {
                Some(held) => &mut held.text,
                None => {
                    scratch.clear();
                    &mut scratch
                }
            };
            let start = out.len();
            offer.write_to(out)?;
            hasher.update(&out[start..]);
            hasher.update(b"\n");
            json_bytes += out.len() - start;
            if let Some(kept) = held.as_mut() {
                kept.spans.push(start..kept.text.len());
                if kept.text.len() > held_json_limit {
                    held = None;
                }
            }
            let OfferRow { offer, updated_at } = offer;
            let signals = OfferSignals {
                price: offer.price.as_str().parse().unwrap_or(0.0),
                discount_pct: offer.discount_pct,
                ends_at: offer.ends_at,
                updated_at,
                has_image: offer.image_url.is_some(),
                category: offer.category.as_str(),
            };
            ids.push(offer.id);
            features.extend_from_slice(&rank::features(&signals, ranked_at));
        }
    }
    let reread = if held.is_some() {
        tx.rollback().await?;
        None
    } else {
        Some(tx)
    };
    debug_assert_eq!(features.len(), ids.len() * FEATURES);
    Ok(OfferSet {
        held,
        reread,
        ids,
        features,
        json_bytes,
        content_hash: hasher.finalize().to_hex().to_string(),
    })
}
