//! `refresh-service` binary; see the library for what it does.

fn main() -> std::process::ExitCode {
    refresh_service::cli::main()
}
