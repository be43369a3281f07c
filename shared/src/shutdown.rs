//! Process lifecycle: the async runtime of a binary's `main`, and one
//! `CancellationToken` per process, cancelled on SIGTERM or SIGINT.

use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// Runs `main` on a multi-threaded runtime; any error becomes one line on stderr,
/// prefixed with `binary`, and a failure exit code.
pub fn run_main(binary: &str, main: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{binary}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{binary}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}
