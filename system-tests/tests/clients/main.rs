//! The clients app teams ship, against the real services (issue 17): PostgreSQL seeded
//! with the demo offers, Redis, `refresh-service run` (the daemon, so `POST …/refresh`
//! works as in production and every delta is the one it builds) and `api-service`.
//!
//! - `android`: the OkHttp interceptor of `clients/android` on a real JVM (its JUnit
//!   system tests, compiled by `clients/android/test.sh --build`), bytes counted on its
//!   sockets; ends with the churn step's `full=<bytes> delta=<bytes>`.
//! - `reference`: the Rust reference client (`api-service/examples/delta_client.rs`)
//!   following the same churn and refresh, decoding the refresher's own delta.
//!
//! Needs what the other suites need (`psql`, PostgreSQL and Redis as `TEST_DATABASE_URL` /
//! `TEST_REDIS_URL` name them, the ONNX Runtime library) and, for `android`, a JDK with
//! Debian's OkHttp, zstd-jni and JUnit 5 jars (`scripts/java.sh` installs them; so do
//! `clients/android/test.sh` and `scripts/test.sh`). Run alone: `cargo test -p system-tests
//! --test clients`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod android;
mod reference;
mod stack;
