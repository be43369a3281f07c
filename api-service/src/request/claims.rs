//! The claims of a bearer token the API reads, typed as they are decoded: `role` a
//! [`Role`], `scope` a [`Scopes`] set parsed once (from the space-separated string RFC 8693
//! defines, or the JSON array some issuers send), and what they allow.

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Scope that allows `POST /api/v4/ofertasws/refresh`.
pub const REFRESH_SCOPE: &str = "ofertas:refresh";

/// The claims the API reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Claims {
    /// Subject (who the token is for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Role; [`Role::Admin`] may request refreshes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Scopes; [`REFRESH_SCOPE`] may request refreshes.
    #[serde(default, skip_serializing_if = "Scopes::is_empty")]
    pub scope: Scopes,
}

impl Claims {
    /// Whether the token may request a refresh: role `admin` or scope `ofertas:refresh`.
    pub fn can_refresh(&self) -> bool {
        self.role == Some(Role::Admin) || self.scope.contains(REFRESH_SCOPE)
    }

    /// Heap memory held by the claims' strings (what a remembered token weighs).
    pub fn heap_bytes(&self) -> usize {
        let role = match &self.role {
            Some(Role::Other(name)) => name.capacity(),
            Some(Role::Admin) | None => 0,
        };
        self.sub.as_ref().map_or(0, String::capacity) + role + self.scope.heap_bytes()
    }
}

/// The `role` claim: `admin`, or any other name (which allows nothing more than a
/// valid token does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// May request refreshes.
    Admin,
    /// Any other role.
    Other(String),
}

impl Role {
    /// The claim as written in the token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Admin => "admin",
            Self::Other(name) => name,
        }
    }
}

impl From<&str> for Role {
    fn from(name: &str) -> Self {
        match name {
            "admin" => Self::Admin,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Self::from(name.as_ref()))
    }
}

/// The `scope` claim as a set of scope names.
///
/// Read from a space-separated string or a JSON array of strings; anything else (a
/// number, an object, `null`, non-string array items) grants no scope rather than
/// refusing the token, since `scope` only ever adds permissions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// The scopes of a space-separated list.
    pub fn parse(text: &str) -> Self {
        Self(text.split_whitespace().map(str::to_owned).collect())
    }

    /// Whether `scope` is one of them.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn heap_bytes(&self) -> usize {
        self.0.capacity() * size_of::<String>() + self.0.iter().map(String::capacity).sum::<usize>()
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.join(" "))
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScopesVisitor)
    }
}

struct ScopesVisitor;

impl<'de> Visitor<'de> for ScopesVisitor {
    type Value = Scopes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a space-separated string or an array of scope names")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Scopes, E> {
        Ok(Scopes::parse(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Scopes, A::Error> {
        let mut scopes = Vec::new();
        while let Some(item) = items.next_element::<ScopeItem>()? {
            if let ScopeItem::Name(name) = item {
                scopes.push(name);
            }
        }
        Ok(Scopes(scopes))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Scopes, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scopes::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scopes, E> {
        Ok(Scopes::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scopes, E> {
        Ok(Scopes::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scopes, E> {
        Ok(Scopes::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scopes, E> {
        Ok(Scopes::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scopes, E> {
        Ok(Scopes::default())
    }
}

/// An item of a scope array: a name, or anything else (ignored).
#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeItem {
    Name(String),
    Other(IgnoredAny),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: serde_json::Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn refresh_needs_admin_role_or_refresh_scope() {
        assert!(claims(json!({"exp": 1, "role": "admin"})).can_refresh());
        assert!(!claims(json!({"exp": 1, "role": "user"})).can_refresh());
        assert!(claims(json!({"exp": 1, "scope": "read ofertas:refresh"})).can_refresh());
        assert!(claims(json!({"exp": 1, "scope": ["a", "ofertas:refresh"]})).can_refresh());
        assert!(claims(json!({"exp": 1, "scope": [1, {}, "ofertas:refresh"]})).can_refresh());
        assert!(!claims(json!({"exp": 1, "scope": "ofertas:refresh:extra"})).can_refresh());
        assert!(!claims(json!({"exp": 1})).can_refresh());
        for odd in [json!(null), json!(5), json!({"a": 1}), json!(true)] {
            assert!(claims(json!({"exp": 1, "scope": odd})).scope.is_empty());
        }
        assert!(serde_json::from_value::<Claims>(json!({"exp": 1, "role": 5})).is_err());
    }

    #[test]
    fn claims_are_written_as_they_are_read() {
        let written = Claims {
            sub: Some("ops".into()),
            exp: 9,
            role: Some(Role::Admin),
            scope: Scopes::parse("a  b"),
        };
        let json = serde_json::to_value(&written).unwrap();
        assert_eq!(
            json,
            json!({"sub": "ops", "exp": 9, "role": "admin", "scope": "a b"})
        );
        let read: Claims = serde_json::from_value(json).unwrap();
        assert_eq!((read.role, read.scope), (written.role, written.scope));
    }
}
