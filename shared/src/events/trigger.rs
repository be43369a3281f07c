//! [`Trigger`]: what asked for a refresh, the name the refresh log, requests and events
//! share.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What asked for a refresh, as recorded in the refresh log and carried by its events.
///
/// Serialised as its name (`schedule`, `ops`, …); any other name (`--trigger NAME`, or a
/// request's own `trigger` field) is kept as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub enum Trigger {
    /// The daemon's in-process schedule.
    Schedule,
    /// The daemon's catch-up refresh at start.
    Startup,
    /// A request on `P:refresh` that names no trigger (operators, `refresh-service trigger`).
    Ops,
    /// `POST /api/v4/ofertasws/refresh`.
    Api,
    /// `refresh-service once` without `--trigger` (what a Kubernetes CronJob runs).
    Cronjob,
    /// `refresh-service rollback`.
    Rollback,
    /// Any other name, given by an operator.
    Named(String),
}

impl Trigger {
    /// Every trigger with a name of its own.
    const KNOWN: [Self; 6] = [
        Self::Schedule,
        Self::Startup,
        Self::Ops,
        Self::Api,
        Self::Cronjob,
        Self::Rollback,
    ];

    /// The name recorded and published.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Schedule => "schedule",
            Self::Startup => "startup",
            Self::Ops => "ops",
            Self::Api => "api",
            Self::Cronjob => "cronjob",
            Self::Rollback => "rollback",
            Self::Named(name) => name,
        }
    }
}

impl From<&str> for Trigger {
    fn from(name: &str) -> Self {
        let known = Self::KNOWN.into_iter().find(|known| known.as_str() == name);
        known.unwrap_or_else(|| Self::Named(name.to_owned()))
    }
}

impl From<String> for Trigger {
    fn from(name: String) -> Self {
        Self::from(name.as_str())
    }
}

impl Serialize for Trigger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Trigger {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_written_as_their_names_and_any_name_is_kept() {
        for (trigger, name) in [
            (Trigger::Schedule, "schedule"),
            (Trigger::Startup, "startup"),
            (Trigger::Ops, "ops"),
            (Trigger::Api, "api"),
            (Trigger::Cronjob, "cronjob"),
            (Trigger::Rollback, "rollback"),
            (Trigger::Named("cronjob-b".into()), "cronjob-b"),
        ] {
            assert_eq!(trigger.as_str(), name);
            assert_eq!(trigger.to_string(), name);
            let json = serde_json::Value::from(name);
            assert_eq!(serde_json::to_value(&trigger).unwrap(), json);
            assert_eq!(serde_json::from_value::<Trigger>(json).unwrap(), trigger);
        }
    }
}
