//! The `api-service` command line: `serve` (the default) and `token`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::request::auth::mint;
use crate::request::claims::{Claims, Role, Scopes};
use crate::settings::ApiSettings;
use crate::startup::Application;

/// Serves the current ofertas snapshot over HTTP from memory.
#[derive(Debug, Parser)]
#[command(name = "api-service", version, about)]
pub struct Cli {
    /// Settings (each also read from the environment variable shown).
    #[command(flatten)]
    pub settings: ApiSettings,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP on API_BIND until SIGTERM.
    Serve,
    /// Print a token signed with JWT_SECRET (development and smoke tests).
    Token {
        /// `role` claim (`admin` may request refreshes).
        #[arg(long)]
        role: Option<String>,
        /// `scope` claim, space-separated.
        #[arg(long)]
        scope: Option<String>,
        /// `sub` claim.
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Lifetime, e.g. `90s`, `15m`, `1h`, `7d`.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// Entry point of the binary: parses, runs, and turns any error into one line on stderr.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Some(Command::Token {
        role,
        scope,
        sub,
        ttl,
    }) = &cli.command
    {
        return print_token(
            &cli.settings,
            role.clone(),
            scope.clone(),
            sub.clone(),
            *ttl,
        );
    }
    let _telemetry = shared::telemetry::init("api-service");
    shared::shutdown::run_main("api-service", async {
        let app = Application::build(cli.settings).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(shared::shutdown::cancel_on_signal(shutdown.clone()));
        app.run_until_stopped(shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(serde::Serialize)]
struct MintedClaims {
    #[serde(flatten)]
    claims: Claims,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

fn print_token(
    settings: &ApiSettings,
    role: Option<String>,
    scope: Option<String>,
    sub: String,
    ttl: Duration,
) -> ExitCode {
    let Some(secret) = settings
        .jwt_secret
        .as_ref()
        .filter(|s| !s.expose_secret().is_empty())
    else {
        eprintln!("api-service: JWT_SECRET is not set; tokens are minted with it");
        return ExitCode::FAILURE;
    };
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let claims = MintedClaims {
        claims: Claims {
            sub: Some(sub),
            exp: now + ttl.as_secs(),
            role: role.as_deref().map(Role::from),
            scope: scope.as_deref().map(Scopes::parse).unwrap_or_default(),
        },
        iat: now,
        iss: settings.jwt_issuer.clone(),
        aud: settings.jwt_audience.clone(),
    };
    match mint(secret.expose_secret(), &claims) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("api-service: cannot sign the token: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;
    use std::time::Duration;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_ttl("30"), Ok(Duration::from_secs(30)));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
