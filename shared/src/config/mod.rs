//! The settings both services read, and how a bad setting is reported.
//!
//! Each service owns its typed settings (`api-service` `settings.rs`, `refresh-service`
//! `settings.rs`) and flattens [`RedisSettings`], which both read, into its clap command,
//! so every variable is also a `--flag`. Validation turns a bad value into one
//! [`ConfigError`] line naming the variable; nothing here panics.

mod redis;

pub use redis::RedisSettings;

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
