//! The settings of `api-service`: where it listens, how it verifies tokens, its memory,
//! connection and fleet settings.

use std::path::PathBuf;

use secrecy::SecretString;

use shared::config::{ConfigError, RedisSettings, require_file};

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
    /// byte, and a new connection to send its first head once accepted.
    #[arg(long, env = "API_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a keep-alive connection with no request pending stays open; the default
    /// outlasts the common load balancers' own idle timeouts (60 s, Google's 600 s).
    #[arg(long, env = "API_IDLE_TIMEOUT_SECS", default_value_t = 620)]
    pub idle_timeout_secs: u64,
    /// Seconds a client may accept no byte of a response before it is closed.
    #[arg(long, env = "API_SEND_TIMEOUT_SECS", default_value_t = 60)]
    pub send_timeout_secs: u64,
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
            idle_timeout_secs: 620,
            send_timeout_secs: 60,
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
            ("API_IDLE_TIMEOUT_SECS", self.idle_timeout_secs),
            ("API_SEND_TIMEOUT_SECS", self.send_timeout_secs),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct ApiCli {
        #[command(flatten)]
        settings: ApiSettings,
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
}
