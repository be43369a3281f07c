//! Offer ranking with the ONNX model: feature extraction and batched scoring.
//!
//! The model takes `features` float32 `[N, 6]` and returns one score per row (`[N, 1]`).
//! Feature order (see `models/make_offer_ranker.py`): discount fraction, scaled log
//! price, expiry urgency, freshness, has-image, category prior.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use ort::{environment::Environment, session::Session, value::TensorRef};
use thiserror::Error;

/// Features per offer.
pub const FEATURES: usize = 6;
/// Rows scored per model call; bounds the tensor memory on very large catalogues.
const BATCH_ROWS: usize = 65_536;

/// A ranking failure.
#[derive(Debug, Error)]
pub enum RankError {
    /// ONNX Runtime could not be loaded from `ORT_DYLIB_PATH`.
    #[error("cannot load ONNX Runtime from ORT_DYLIB_PATH={path:?}: {source}")]
    Runtime {
        /// Library path.
        path: PathBuf,
        /// What the loader said.
        #[source]
        source: BoxError,
    },
    /// The model could not be loaded or does not have the expected signature.
    #[error("cannot use ranking model RANKER_MODEL={path:?}: {source}")]
    Model {
        /// Model path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// Inference failed.
    #[error("ranking model failed: {0}")]
    Inference(#[from] ort::Error),
    /// The model returned another number of scores than rows given.
    #[error("ranking model returned {got} scores for {expected} offers")]
    Shape {
        /// Rows given.
        expected: usize,
        /// Scores returned.
        got: usize,
    },
}

/// The cause of a start-up failure: ONNX Runtime's own error, or what the check found.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The process-wide ONNX Runtime environment; ONNX Runtime allows one per process.
static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

fn environment(dylib: &Path) -> Result<Environment, RankError> {
    let runtime_error = |source: BoxError| RankError::Runtime {
        path: dylib.to_owned(),
        source,
    };
    // A poisoned lock: another thread panicked while loading; its message is all there is.
    let mut slot = ENVIRONMENT
        .lock()
        .map_err(|e| runtime_error(e.to_string().into()))?;
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    if !dylib.is_file() {
        return Err(runtime_error(
            "no such file (run scripts/onnxruntime.sh)".into(),
        ));
    }
    let env = ort::init_from(dylib)
        .map_err(|e| runtime_error(e.into()))?
        .with_name("ofertasws-ranker")
        .build()
        .map_err(|e| runtime_error(e.into()))?;
    *slot = Some(env.clone());
    Ok(env)
}

/// A loaded ranking model. Load once at start: a session takes tens of milliseconds.
pub struct Ranker {
    session: Mutex<Session>,
}

impl Ranker {
    /// Loads ONNX Runtime from `dylib` (once per process) and the model at `model`, and
    /// checks the model scores one row of [`FEATURES`] values into one score.
    ///
    /// # Errors
    /// [`RankError::Runtime`] or [`RankError::Model`], naming the path at fault.
    pub fn load(model: &Path, dylib: &Path) -> Result<Self, RankError> {
        let env = environment(dylib)?;
        let model_error = |source: BoxError| RankError::Model {
            path: model.to_owned(),
            source,
        };
        let session = open_session(&env, model).map_err(|e| model_error(e.into()))?;
        let ranker = Self {
            session: Mutex::new(session),
        };
        match ranker.score(&[0.0; FEATURES]) {
            Ok(scores) if scores.len() == 1 => Ok(ranker),
            Ok(scores) => Err(model_error(
                format!("expected 1 score per row, got {}", scores.len()).into(),
            )),
            Err(e) => Err(model_error(
                format!("expected input [N, {FEATURES}] float32: {e}").into(),
            )),
        }
    }

    /// Scores offers given as a flat row-major `[N, FEATURES]` slice; one score per row.
    ///
    /// # Errors
    /// [`RankError::Inference`] or [`RankError::Shape`].
    pub fn score(&self, features: &[f32]) -> Result<Vec<f32>, RankError> {
        let rows = features.len() / FEATURES;
        let mut scores = Vec::with_capacity(rows);
        let mut session = self
            .session
            .lock()
            .map_err(|e| ort::Error::new(e.to_string()))?;
        for batch in features.chunks(BATCH_ROWS * FEATURES) {
            let batch_rows = batch.len() / FEATURES;
            let input = TensorRef::from_array_view(([batch_rows, FEATURES], batch))?;
            let outputs = session.run(ort::inputs![input])?;
            let (_, values) = outputs[0].try_extract_tensor::<f32>()?;
            if values.len() != batch_rows {
                return Err(RankError::Shape {
                    expected: batch_rows,
                    got: values.len(),
                });
            }
            scores.extend_from_slice(values);
        }
        Ok(scores)
    }
}

fn open_session(env: &Environment, model: &Path) -> Result<Session, ort::Error> {
    Session::builder(env)?
        .with_intra_threads(1)?
        .commit_from_file(model)
}

/// What the features are computed from; borrowed from the database row.
#[derive(Clone, Copy, Debug)]
pub struct OfferSignals<'a> {
    /// Price in the offer's currency.
    pub price: f64,
    /// Discount in percent, when there is an original price.
    pub discount_pct: Option<f64>,
    /// End of the offer, if it has one.
    pub ends_at: Option<DateTime<Utc>>,
    /// Last change of the offer.
    pub updated_at: DateTime<Utc>,
    /// Whether the offer has an image.
    pub has_image: bool,
    /// Category name.
    pub category: &'a str,
}

const SECONDS_PER_DAY: f64 = 86_400.0;

/// The instant the clock-dependent features (urgency, freshness) are read at for a
/// refresh at `now`: 12:00 of `now`'s day in `timezone`. Both refreshes of a day then rank
/// an unchanged offer the same, so it is the same bytes in both documents and a delta
/// carries only what changed; the features' time scales are days (one week, two weeks),
/// and midday is at most twelve hours off any refresh of the day. README, "Ranking
/// model", has the measurements behind it.
pub fn ranking_time(now: DateTime<Utc>, timezone: Tz) -> DateTime<Utc> {
    let day = now.with_timezone(&timezone).date_naive();
    day.and_hms_opt(12, 0, 0)
        .and_then(|noon| noon.and_local_timezone(timezone).earliest())
        .map_or(now, |noon| noon.with_timezone(&Utc))
}

/// The model's feature vector for one offer at time `now`.
pub fn features(offer: &OfferSignals<'_>, now: DateTime<Utc>) -> [f32; FEATURES] {
    let days_until = |at: DateTime<Utc>| (at - now).num_seconds() as f64 / SECONDS_PER_DAY;
    let discount = offer.discount_pct.unwrap_or(0.0).clamp(0.0, 100.0) / 100.0;
    let price = (1.0 + offer.price.max(0.0)).ln() / 1001f64.ln();
    let urgency = offer
        .ends_at
        .map_or(0.0, |end| (-days_until(end).max(0.0) / 7.0).exp());
    let freshness = (-(-days_until(offer.updated_at)).max(0.0) / 14.0).exp();
    [
        discount as f32,
        price.min(1.0) as f32,
        urgency as f32,
        freshness as f32,
        f32::from(u8::from(offer.has_image)),
        category_prior(offer.category),
    ]
}

/// How much app users engage with a category, 0..1 (a stand-in for a learned prior).
pub fn category_prior(category: &str) -> f32 {
    match category {
        "Restaurantes" => 0.9,
        "Supermercados" => 0.8,
        "Tecnología" => 0.75,
        "Moda" => 0.7,
        "Belleza" => 0.6,
        "Salud" => 0.6,
        "Hogar" => 0.55,
        "Entretenimiento" => 0.65,
        "Viajes" => 0.5,
        "Deportes" => 0.45,
        "Educación" => 0.4,
        "Automotriz" => 0.35,
        "Mascotas" => 0.5,
        _ => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn features_follow_the_documented_scales() {
        let now = Utc::now();
        let offer = OfferSignals {
            price: 1000.0,
            discount_pct: Some(37.5),
            ends_at: None,
            updated_at: now,
            has_image: true,
            category: "Restaurantes",
        };
        let f = features(&offer, now);
        assert!((f[0] - 0.375).abs() < 1e-6);
        assert!((f[1] - 1.0).abs() < 1e-6);
        assert_eq!(f[2], 0.0, "open-ended offers have no urgency");
        assert!((f[3] - 1.0).abs() < 1e-6);
        assert_eq!(f[4], 1.0);
        assert!((f[5] - 0.9).abs() < 1e-6);

        let ending = OfferSignals {
            ends_at: Some(now + Duration::days(7)),
            updated_at: now - Duration::days(14),
            discount_pct: None,
            has_image: false,
            category: "Desconocida",
            ..offer
        };
        let f = features(&ending, now);
        assert_eq!(f[0], 0.0);
        assert!((f[2] - (-1.0f32).exp()).abs() < 1e-4);
        assert!((f[3] - (-1.0f32).exp()).abs() < 1e-4);
        assert_eq!(f[4], 0.0);
        assert_eq!(f[5], 0.5);
    }

    #[test]
    fn features_are_read_at_noon_of_the_refresh_day_in_its_zone() {
        use chrono::TimeZone;
        let utc = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        let panama = chrono_tz::America::Panama;
        // 10:00 and 15:00 in Panama (UTC-5) read the same instant: 12:00 Panama.
        assert_eq!(ranking_time(utc(30, 15), panama), utc(30, 17));
        assert_eq!(ranking_time(utc(30, 20), panama), utc(30, 17));
        // 23:30 in Panama is 04:30 UTC the next day: still Panama's day.
        let late = Utc.with_ymd_and_hms(2026, 12, 1, 4, 30, 0).unwrap();
        assert_eq!(ranking_time(late, panama), utc(30, 17));
        // A zone with daylight saving: noon is 16:00 UTC in summer, 17:00 in winter.
        let new_york = chrono_tz::America::New_York;
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 14, 0, 0).unwrap();
        assert_eq!(
            ranking_time(summer, new_york),
            Utc.with_ymd_and_hms(2026, 7, 1, 16, 0, 0).unwrap()
        );
        assert_eq!(ranking_time(utc(30, 14), new_york), utc(30, 17));
    }
}
