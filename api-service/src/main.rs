//! `api-service` binary; see the library for what it does.

fn main() -> std::process::ExitCode {
    api_service::cli::main()
}
