//! Typed settings read from the environment (and a `.env` file), validated at start.
//!
//! Each service flattens the groups it needs into its clap command, so every variable is
//! also a `--flag`. Validation turns a bad value into one [`ConfigError`] line naming the
//! variable; nothing here panics.

use std::path::PathBuf;

use chrono_tz::Tz;
use croner::{
    Cron,
    parser::{CronParser, Seconds},
};
use secrecy::SecretString;
use thiserror::Error;

/// A configuration value that cannot be used.
#[derive(Debug, Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// Its value (never a secret).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error for `variable` holding `value`.
    pub fn new(variable: &'static str, value: impl Into<String>, reason: impl ToString) -> Self {
        Self {
            variable,
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}

/// Redis connection and key prefix, used by both services.
#[derive(clap::Args, Clone, Debug)]
pub struct RedisSettings {
    /// Redis URL: `redis://`, `rediss://`, `redis-cluster://` or `redis-sentinel://`.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of every Redis key and channel.
    #[arg(long, env = "OFERTASWS_PREFIX", default_value = "ofertasws")]
    pub prefix: String,
}

impl RedisSettings {
    /// Settings for `url` and `prefix` (tests and tools).
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            redis_url: url.into(),
            prefix: prefix.into(),
        }
    }

    /// The fred client configuration for `REDIS_URL`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `REDIS_URL` when fred cannot parse it, or `OFERTASWS_PREFIX`
    /// when the prefix is empty or contains spaces or braces.
    pub fn client_config(&self) -> Result<fred::types::config::Config, ConfigError> {
        if self.prefix.is_empty()
            || self
                .prefix
                .contains(|c: char| c.is_whitespace() || c == '{' || c == '}')
        {
            return Err(ConfigError::new(
                "OFERTASWS_PREFIX",
                &self.prefix,
                "must be non-empty, without spaces or braces",
            ));
        }
        const SCHEMES: [&str; 6] = [
            "redis://",
            "rediss://",
            "redis-cluster://",
            "rediss-cluster://",
            "redis-sentinel://",
            "rediss-sentinel://",
        ];
        if !SCHEMES
            .iter()
            .any(|scheme| self.redis_url.starts_with(scheme))
        {
            return Err(ConfigError::new(
                "REDIS_URL",
                redact_url(&self.redis_url),
                "must start with redis://, rediss://, redis-cluster:// or redis-sentinel://",
            ));
        }
        fred::types::config::Config::from_url(&self.redis_url)
            .map_err(|e| ConfigError::new("REDIS_URL", redact_url(&self.redis_url), e.details()))
    }
}

/// The refresh schedule: a six-field cron expression (seconds first) in a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The expression as configured.
    pub expression: String,
    /// The parsed expression, with the same rules tokio-cron-scheduler applies.
    pub cron: Cron,
    /// Time zone the expression is read in.
    pub timezone: Tz,
}

/// Parses a six-field cron expression the way tokio-cron-scheduler does (seconds required,
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

/// Settings of `api-service`.
#[derive(clap::Args, Clone, Debug)]
pub struct ApiSettings {
    /// Redis connection and prefix.
    #[command(flatten)]
    pub redis: RedisSettings,
    /// Address the HTTP server listens on.
    #[arg(long, env = "API_BIND", default_value = "0.0.0.0:8000")]
    pub api_bind: String,
    /// HS256 signing secret; required unless `JWT_PUBLIC_KEY_FILE` is set.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// PEM public key (RSA → RS256, EC P-256 → ES256) verifying tokens.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` claim, when set.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Resident memory (MiB) above which a warning is logged.
    #[arg(long, env = "API_RSS_WARN_MB", default_value_t = 256)]
    pub rss_warn_mb: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "API_SHUTDOWN_GRACE_SECS", default_value_t = 25)]
    pub shutdown_grace_secs: u64,
    /// Largest identity document (MiB) held decompressed in memory; a larger one is
    /// decompressed from the zstd body while it is sent.
    #[arg(long, env = "API_IDENTITY_HOLD_MB", default_value_t = 64)]
    pub identity_hold_mb: u64,
    /// Seconds a client has to send a whole request head once it has sent its first
    /// byte; idle keep-alive connections are not timed.
    #[arg(long, env = "API_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Most connections served at once; more are closed as soon as they are accepted.
    #[arg(long, env = "API_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Upper bound (ms, at most 3000) of a random wait before a new snapshot's bodies are
    /// fetched, so a large fleet does not fetch them from one Redis shard at the same
    /// instant; 0 fetches at once.
    #[arg(
        long,
        env = "API_FETCH_JITTER_MS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=MAX_FETCH_JITTER_MS)
    )]
    pub fetch_jitter_ms: u64,
}

/// Largest `API_FETCH_JITTER_MS`: a replica still serves a new snapshot within the
/// contract's 5 s after the wait, the fetch and the decompression.
pub const MAX_FETCH_JITTER_MS: u64 = 3000;

impl ApiSettings {
    /// Settings for tests and tools: `redis`, HS256 `secret`, bound to an ephemeral port.
    pub fn for_secret(redis: RedisSettings, secret: &str) -> Self {
        Self {
            redis,
            api_bind: "127.0.0.1:0".into(),
            jwt_secret: Some(SecretString::from(secret.to_owned())),
            jwt_public_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            rss_warn_mb: 256,
            shutdown_grace_secs: 25,
            identity_hold_mb: 64,
            header_timeout_secs: 10,
            max_connections: 10_000,
            fetch_jitter_ms: 0,
        }
    }

    /// The window of the random wait before a new snapshot's bodies are fetched.
    pub fn fetch_jitter(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.fetch_jitter_ms)
    }

    /// The listen address.
    ///
    /// # Errors
    /// [`ConfigError`] naming `API_BIND`.
    pub fn bind_addr(&self) -> Result<std::net::SocketAddr, ConfigError> {
        self.api_bind
            .parse()
            .map_err(|e| ConfigError::new("API_BIND", &self.api_bind, e))
    }

    /// Checks every setting that can be checked without connecting anywhere.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.client_config()?;
        self.bind_addr()?;
        let limits = [
            ("API_HEADER_TIMEOUT_SECS", self.header_timeout_secs),
            ("API_MAX_CONNECTIONS", self.max_connections as u64),
        ];
        if let Some((variable, _)) = limits.into_iter().find(|&(_, value)| value == 0) {
            return Err(ConfigError::new(variable, "0", "must be at least 1"));
        }
        let secret = self
            .jwt_secret
            .as_ref()
            .map(|s| secrecy::ExposeSecret::expose_secret(s).is_empty());
        match (secret, &self.jwt_public_key_file) {
            (Some(true), _) => Err(ConfigError::new("JWT_SECRET", "", "is empty")),
            (None, None) => Err(ConfigError::new(
                "JWT_SECRET",
                "",
                "is not set: the API needs JWT_SECRET or JWT_PUBLIC_KEY_FILE to verify tokens",
            )),
            (_, Some(path)) => require_file("JWT_PUBLIC_KEY_FILE", path),
            _ => Ok(()),
        }
    }
}

/// A random wait in `[0, window)` (zero for an empty window), drawn anew for every call:
/// each replica's wait before fetching a new snapshot (`API_FETCH_JITTER_MS`).
pub fn fetch_delay(window: std::time::Duration) -> std::time::Duration {
    let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::from_nanos(rand::random_range(0..nanos))
}

fn require_file(variable: &'static str, path: &std::path::Path) -> Result<(), ConfigError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ConfigError::new(
            variable,
            path.display().to_string(),
            "no such file",
        ))
    }
}

/// The URL with any password replaced by `***`, for error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The ranking model shipped in the workspace this binary was built from.
const DEFAULT_RANKER_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../refresh-service/models/offer_ranker.onnx"
);
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

    #[derive(Parser)]
    struct ApiCli {
        #[command(flatten)]
        settings: ApiSettings,
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

    #[test]
    fn connection_limits_of_zero_name_their_variable() {
        let mut api = ApiSettings::for_secret(RedisSettings::new("redis://h:6379", "p"), "s");
        api.header_timeout_secs = 0;
        assert_eq!(
            api.validate().unwrap_err().variable,
            "API_HEADER_TIMEOUT_SECS"
        );
        (api.header_timeout_secs, api.max_connections) = (1, 0);
        assert_eq!(api.validate().unwrap_err().variable, "API_MAX_CONNECTIONS");
    }

    #[test]
    fn fetch_delays_stay_within_the_jitter_window() {
        use std::time::Duration;
        let mut api = ApiSettings::for_secret(RedisSettings::new("redis://h", "p"), "s");
        assert_eq!(fetch_delay(api.fetch_jitter()), Duration::ZERO);
        api.fetch_jitter_ms = 50;
        let delays: Vec<_> = (0..200).map(|_| fetch_delay(api.fetch_jitter())).collect();
        assert!(delays.iter().all(|d| *d < Duration::from_millis(50)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(25)));
        let err = ApiCli::try_parse_from(["t", "--jwt-secret", "s", "--fetch-jitter-ms", "3001"]);
        assert!(err.is_err(), "over the 5 s promise");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
