//! Shared types in the OpenAPI document (feature `openapi`): [`Text`] and [`Sha256`] are
//! strings there, declared as poem-openapi declares `String` (it has no `Cow`, and a hex
//! digest is a string on the wire), so the schemas derived from them read `string`.

use std::borrow::Cow;
use std::convert::Infallible;

use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

use crate::document::Text;
use crate::sha256::Sha256;

/// Implements poem-openapi's string schema for `$ty`, read from a `String` with `$from`
/// and written with `Display`.
macro_rules! string_schema {
    ($ty:ty, $from:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;

            type RawValueType = Self;

            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                String::name()
            }

            fn schema_ref() -> MetaSchemaRef {
                String::schema_ref()
            }

            fn register(registry: &mut Registry) {
                String::register(registry);
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromJSON for $ty {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                let text = String::parse_from_json(value).map_err(ParseError::propagate)?;
                ($from)(text).map_err(ParseError::custom)
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.to_string()))
            }
        }
    };
}

string_schema!(Text<'_>, |text: String| Ok::<_, Infallible>(Text::from(
    text
)));
string_schema!(Sha256, |hex: String| hex.parse::<Sha256>());
