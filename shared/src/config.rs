//! The settings both services read, and how a bad setting is reported.
//!
//! Each service owns its typed settings (`api-service` `settings.rs`, `refresh-service`
//! `settings.rs`) and flattens [`RedisSettings`], which both read, into its clap command,
//! so every variable is also a `--flag`. Validation turns a bad value into one
//! [`ConfigError`] line naming the variable; nothing here panics.

use thiserror::Error;

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

/// Checks that the file a setting names exists.
///
/// # Errors
/// [`ConfigError`] naming `variable` when `path` is not a file.
pub fn require_file(variable: &'static str, path: &std::path::Path) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
