//! The settings of `refresh-service`: PostgreSQL, the schedule and its time zone, the
//! ranking model and ONNX Runtime.

use std::path::PathBuf;

use chrono_tz::Tz;
use croner::{
    Cron,
    parser::{CronParser, Seconds},
};
use secrecy::SecretString;

use shared::config::{ConfigError, RedisSettings, redact_url, require_file};

/// The refresh schedule: a six-field cron expression (seconds first) in a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The expression as configured.
    pub expression: String,
    /// The parsed expression, with the rules the schedule applies.
    pub cron: Cron,
    /// Time zone the expression is read in.
    pub timezone: Tz,
}

/// Parses a six-field cron expression the way the schedule runs it (seconds required,
/// day-of-month AND day-of-week).
///
/// # Errors
/// A message saying what croner could not parse.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression)
        .map_err(|e| e.to_string())
}

/// Settings of `refresh-service`.
#[derive(clap::Args, Clone, Debug)]
pub struct RefreshSettings {
    /// PostgreSQL URL of the offers database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/ofertasws",
        hide_env_values = true
    )]
    pub database_url: SecretString,
    /// Redis connection and prefix.
    #[command(flatten)]
    pub redis: RedisSettings,
    /// Cron expression (sec min hour dom mon dow) of the in-process schedule, or `off`.
    #[arg(long, env = "REFRESH_SCHEDULE", default_value = "0 0 10,15 * * *")]
    pub refresh_schedule: String,
    /// IANA time zone of the schedule.
    #[arg(long, env = "REFRESH_TIMEZONE", default_value = "America/Panama")]
    pub refresh_timezone: String,
    /// ONNX ranking model.
    #[arg(long, env = "RANKER_MODEL", default_value = DEFAULT_RANKER_MODEL)]
    pub ranker_model: PathBuf,
    /// ONNX Runtime shared library (`libonnxruntime.so`).
    #[arg(long, env = "ORT_DYLIB_PATH", default_value = DEFAULT_ORT_DYLIB)]
    pub ort_dylib_path: PathBuf,
}

impl RefreshSettings {
    /// The in-process schedule, or `None` when `REFRESH_SCHEDULE=off`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `REFRESH_SCHEDULE` or `REFRESH_TIMEZONE`.
    pub fn schedule(&self) -> Result<Option<Schedule>, ConfigError> {
        let timezone = self.timezone()?;
        let expression = self.refresh_schedule.trim();
        if expression.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let cron = parse_cron(expression)
            .map_err(|e| ConfigError::new("REFRESH_SCHEDULE", expression, e))?;
        Ok(Some(Schedule {
            expression: expression.to_owned(),
            cron,
            timezone,
        }))
    }

    /// The time zone of the schedule and of the ranking's day (`REFRESH_TIMEZONE`).
    ///
    /// # Errors
    /// [`ConfigError`] naming `REFRESH_TIMEZONE` when it is no IANA zone.
    pub fn timezone(&self) -> Result<Tz, ConfigError> {
        self.refresh_timezone
            .parse()
            .map_err(|e| ConfigError::new("REFRESH_TIMEZONE", &self.refresh_timezone, e))
    }

    /// Checks every setting that can be checked without connecting anywhere.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.client_config()?;
        self.schedule()?;
        let url = secrecy::ExposeSecret::expose_secret(&self.database_url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                redact_url(url),
                "must be a postgres:// URL",
            ));
        }
        require_file("RANKER_MODEL", &self.ranker_model)?;
        require_file("ORT_DYLIB_PATH", &self.ort_dylib_path)
    }
}

/// The ranking model shipped in the workspace this binary was built from.
const DEFAULT_RANKER_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/offer_ranker.onnx");
/// Where the set-up script installs ONNX Runtime in that workspace.
const DEFAULT_ORT_DYLIB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../.local/onnxruntime/libonnxruntime.so"
);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: RefreshSettings,
    }

    fn settings(args: &[&str]) -> RefreshSettings {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
    }

    #[test]
    fn defaults_schedule_twice_a_day_in_panama() {
        let schedule = settings(&[]).schedule().unwrap().unwrap();
        assert_eq!(schedule.expression, "0 0 10,15 * * *");
        assert_eq!(schedule.timezone, chrono_tz::America::Panama);
    }

    #[test]
    fn off_disables_the_schedule() {
        assert!(
            settings(&["--refresh-schedule", "off"])
                .schedule()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = settings(&["--refresh-schedule", "every day"])
            .schedule()
            .unwrap_err();
        assert_eq!(err.variable, "REFRESH_SCHEDULE");
        let err = settings(&["--refresh-timezone", "Mars/Olympus"])
            .schedule()
            .unwrap_err();
        assert_eq!(err.variable, "REFRESH_TIMEZONE");
        assert!(
            err.to_string()
                .starts_with("invalid REFRESH_TIMEZONE=\"Mars/Olympus\""),
            "{err}"
        );
        let err = settings(&["--redis-url", "http://nope"])
            .validate()
            .unwrap_err();
        assert_eq!(err.variable, "REDIS_URL");
        let err = settings(&["--database-url", "mysql://x"])
            .validate()
            .unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
        let err = settings(&["--ranker-model", "/nonexistent.onnx"])
            .validate()
            .unwrap_err();
        assert_eq!(err.variable, "RANKER_MODEL");
    }
}
