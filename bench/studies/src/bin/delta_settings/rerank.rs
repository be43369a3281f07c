//! Re-ranking a document with the model itself (`refresh_service::pipeline::rank`),
//! loaded as the refresher loads it: the one input the document does not carry
//! (`signals`: every offer's `updated_at`), the time the clock-dependent features are
//! read at, the score's rounding, and the variant a document would be published as.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, anyhow, ensure};
use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use clap::ValueEnum;
use secrecy::ExposeSecret as _;
use sqlx::Connection as _;

use refresh_service::pipeline::rank::{self, OfferSignals, Ranker};
use refresh_service::settings::RefreshSettings;

use crate::document::Document;

/// Where the clock-dependent features (urgency, freshness) are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub(crate) enum Clock {
    /// At the refresh's own time, as the refresher does today.
    Exact,
    /// At 00:00 of the refresh's day in `REFRESH_TIMEZONE`.
    DayStart,
    /// At 12:00 of the refresh's day in `REFRESH_TIMEZONE`.
    Midday,
}

impl Clock {
    fn at(self, refresh: DateTime<Utc>, zone: Tz) -> anyhow::Result<DateTime<Utc>> {
        let hour = match self {
            Self::Exact => return Ok(refresh),
            Self::DayStart => 0,
            Self::Midday => 12,
        };
        let local = refresh
            .with_timezone(&zone)
            .date_naive()
            .and_hms_opt(hour, 0, 0);
        local
            .and_then(|local| zone.from_local_datetime(&local).earliest())
            .map(|at| at.with_timezone(&Utc))
            .with_context(|| format!("{hour}:00 does not exist in {zone} on the refresh's day"))
    }
}

/// The model's raw score of every offer of `document` (by index) with the clock at `at`.
/// Rows go to the model in id order, one batch, as the refresher sends them.
pub(crate) fn model_scores(
    ranker: &Ranker,
    document: &Document,
    updated_at: &HashMap<i64, DateTime<Utc>>,
    at: DateTime<Utc>,
) -> anyhow::Result<Vec<f32>> {
    let mut by_id: Vec<usize> = (0..document.offers.len()).collect();
    by_id.sort_unstable_by_key(|&i| document.offers[i].id);
    let mut features = Vec::with_capacity(by_id.len() * rank::FEATURES);
    for &i in &by_id {
        let offer = &document.offers[i];
        let updated_at = *updated_at
            .get(&offer.id)
            .with_context(|| format!("no updated_at for offer {}", offer.id))?;
        let signals = OfferSignals {
            price: offer.price,
            discount_pct: offer.discount_pct,
            ends_at: offer.ends_at,
            updated_at,
            has_image: offer.has_image,
            category: &offer.category,
        };
        features.extend_from_slice(&rank::features(&signals, at));
    }
    let raw = ranker.score(&features)?;
    ensure!(
        raw.len() == by_id.len(),
        "the model returned {} scores for {} offers",
        raw.len(),
        by_id.len()
    );
    let mut scores = vec![0.0; raw.len()];
    for (score, &i) in raw.into_iter().zip(&by_id) {
        scores[i] = score;
    }
    Ok(scores)
}

/// A raw score as printed with `decimals` decimals (the refresher's rounding).
pub(crate) fn rounded(score: f32, decimals: i32) -> f64 {
    let score = if score.is_finite() {
        f64::from(score)
    } else {
        0.0
    };
    let scale = 10f64.powi(decimals);
    (score * scale).round() / scale
}

/// A document as it would be published with `decimals` and `clock`.
pub(crate) struct Variant {
    pub(crate) text: Vec<u8>,
    /// Published score by offer index.
    pub(crate) scores: Vec<f64>,
    pub(crate) order: Vec<usize>,
}

/// A document of a pair, with what re-ranking it needs.
pub(crate) struct Snapshot {
    pub(crate) document: Document,
    pub(crate) updated_at: HashMap<i64, DateTime<Utc>>,
    /// Raw model scores at the refresh's own time.
    pub(crate) exact: Vec<f32>,
}

impl Snapshot {
    pub(crate) fn load(ranker: &Ranker, path: &Path, zone: Tz) -> anyhow::Result<Self> {
        let document = Document::read(path)?;
        let signals = path.with_extension("signals.json");
        let rows: Vec<(i64, DateTime<Utc>)> = serde_json::from_slice(
            &std::fs::read(&signals).with_context(|| format!("reading {}", signals.display()))?,
        )
        .with_context(|| format!("parsing {}", signals.display()))?;
        let updated_at = rows.into_iter().collect();
        let exact = model_scores(ranker, &document, &updated_at, document.generated_at)?;
        let snapshot = Self {
            document,
            updated_at,
            exact,
        };
        // The model, the inputs and the rendering must give back the refresher's own bytes,
        // as it ranks now (the clock at 12:00 of the day in `zone`, four decimals) or as it
        // ranked before (the exact clock, six decimals).
        let published = [(Clock::Midday, 4), (Clock::Exact, 6)];
        let mut reproduced = false;
        for (clock, decimals) in published {
            reproduced |=
                snapshot.variant(ranker, clock, decimals, zone)?.text == snapshot.document.text;
        }
        ensure!(
            reproduced,
            "re-ranking {} at its own time does not reproduce it: the model, the inputs or the \
             document format differ from the refresher's",
            path.display()
        );
        Ok(snapshot)
    }

    pub(crate) fn variant(
        &self,
        ranker: &Ranker,
        clock: Clock,
        decimals: i32,
        zone: Tz,
    ) -> anyhow::Result<Variant> {
        let raw = match clock {
            Clock::Exact => self.exact.clone(),
            _ => {
                let at = clock.at(self.document.generated_at, zone)?;
                model_scores(ranker, &self.document, &self.updated_at, at)?
            }
        };
        let scores: Vec<f64> = raw.iter().map(|&s| rounded(s, decimals)).collect();
        let order = self.document.ranked(&scores);
        Ok(Variant {
            text: self.document.render(&order, &scores),
            scores,
            order,
        })
    }
}

/// The model, loaded as the refresher loads it, and `REFRESH_TIMEZONE`.
pub(crate) fn ranker_and_zone(settings: &RefreshSettings) -> anyhow::Result<(Ranker, Tz)> {
    let zone: Tz = settings
        .refresh_timezone
        .parse()
        .map_err(|e| anyhow!("REFRESH_TIMEZONE={:?}: {e}", settings.refresh_timezone))?;
    Ok((
        Ranker::load(&settings.ranker_model, &settings.ort_dylib_path)?,
        zone,
    ))
}

pub(crate) async fn signals(settings: &RefreshSettings, out: &Path) -> anyhow::Result<()> {
    let mut db = sqlx::PgConnection::connect(settings.database_url.expose_secret())
        .await
        .context("connecting to DATABASE_URL")?;
    let rows: Vec<(i64, DateTime<Utc>)> =
        sqlx::query_as("select id, updated_at from ofertas order by id")
            .fetch_all(&mut db)
            .await?;
    std::fs::write(out, serde_json::to_vec(&rows)?)
        .with_context(|| format!("writing {}", out.display()))
}
