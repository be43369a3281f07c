//! `REDIS_URL` and `OFERTASWS_PREFIX`, which both services read.

use super::{ConfigError, redact_url};

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
