//! A Redis key prefix of the test's own on the shared test Redis (`TEST_REDIS_URL`), so
//! tests running at once never see each other's keys and channels.

use fred::prelude::{ClientLike, LuaInterface};

use shared::config::RedisSettings;
use shared::redis::Start;

use crate::cleanup::run_to_end;

/// The Redis the services' integration tests share (each test with its own prefix).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis prefix of the test's own; its keys are deleted when it is dropped.
pub struct TestPrefix(pub String);

impl Default for TestPrefix {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPrefix {
    /// A fresh, unique prefix.
    pub fn new() -> Self {
        Self(format!(
            "ofertasws_test_p_{}",
            uuid::Uuid::new_v4().simple()
        ))
    }
}

/// Deletes every key matching `ARGV[1]`; returns how many.
const DELETE_MATCHING: &str = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', k) end return n";

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}:*", self.0);
        run_to_end(move || async move {
            let settings = RedisSettings::new(redis_url(), "cleanup");
            let Ok(client) = shared::redis::client(&settings, Start::FailFast) else {
                return;
            };
            if shared::redis::connect(&client).await.is_ok() {
                let _: Result<i64, _> = client
                    .eval(DELETE_MATCHING, Vec::<String>::new(), vec![pattern])
                    .await;
                let _ = client.quit().await;
            }
        });
    }
}
