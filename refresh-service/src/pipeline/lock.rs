//! The Redis lock that keeps one refresh at a time across every replica and CronJob.
//!
//! `SET key token NX PX ttl` takes it; a background task renews it while the refresh
//! runs; release deletes it only if the token is still ours. A holder that dies stops
//! renewing, so the lock expires and the next refresh can run.

use std::time::Duration;

use fred::prelude::{Client, Expiration, KeysInterface, LuaInterface, SetOptions};
use tokio::task::JoinHandle;

/// Lock lifetime without renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(30);

const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// A held refresh lock; renewed until [`RefreshLock::release`] (or drop) stops it.
pub struct RefreshLock {
    client: Client,
    key: String,
    token: String,
    renewer: JoinHandle<()>,
}

impl RefreshLock {
    /// Takes the lock at `key` for `ttl`, or returns `None` when someone else holds it.
    ///
    /// # Errors
    /// The Redis error when the lock cannot be queried.
    pub async fn acquire(
        client: &Client,
        key: String,
        ttl: Duration,
    ) -> Result<Option<Self>, fred::error::Error> {
        let token = format!(
            "{}:{}",
            crate::pipeline::context::instance_name(),
            uuid::Uuid::new_v4()
        );
        let ttl_ms = ttl.as_millis() as i64;
        let taken: Option<String> = client
            .set(
                &key,
                token.as_str(),
                Some(Expiration::PX(ttl_ms)),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        if taken.is_none() {
            return Ok(None);
        }
        let renewer = tokio::spawn(renew(client.clone(), key.clone(), token.clone(), ttl));
        Ok(Some(Self {
            client: client.clone(),
            key,
            token,
            renewer,
        }))
    }

    /// Who holds the lock at `key` now, if anyone.
    ///
    /// # Errors
    /// The Redis error.
    pub async fn holder(client: &Client, key: &str) -> Result<Option<String>, fred::error::Error> {
        client.get(key).await
    }

    /// Stops renewing and deletes the lock if it is still ours.
    ///
    /// # Errors
    /// The Redis error; the lock then expires by itself.
    pub async fn release(self) -> Result<(), fred::error::Error> {
        self.renewer.abort();
        let _: i64 = self
            .client
            .eval(RELEASE, vec![self.key.clone()], vec![self.token.clone()])
            .await?;
        Ok(())
    }
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn renew(client: Client, key: String, token: String, ttl: Duration) {
    let mut every = tokio::time::interval(ttl / 3);
    every.tick().await;
    loop {
        every.tick().await;
        let renewed: Result<i64, _> = client
            .eval(
                RENEW,
                vec![key.clone()],
                vec![token.clone(), ttl.as_millis().to_string()],
            )
            .await;
        match renewed {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(lock.key = %key, "refresh lock was lost; a newer snapshot cannot be overwritten by this refresh");
                return;
            }
            Err(e) => {
                tracing::warn!(lock.key = %key, error = %e, "could not renew the refresh lock")
            }
        }
    }
}
