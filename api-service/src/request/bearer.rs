//! The bearer-token security scheme of the poem endpoints: a poem-openapi extractor that
//! reads and checks the token with [`Authenticator::authorize`] and refuses it with
//! [`ApiError::unauthorized`] — the very code the snapshot route runs — and declares the
//! scheme in the OpenAPI document.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::request::auth::Authenticator;
use crate::request::claims::Claims;
use crate::request::errors::ApiError;

/// The scheme's name in the OpenAPI document.
const SCHEME: &str = "BearerAuth";

/// A verified bearer token.
pub struct BearerAuth(pub Arc<Claims>);

impl<'a> ApiExtractor<'a> for BearerAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some("A verified bearer token."),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let auth = req.data::<Arc<Authenticator>>().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "authenticator missing",
            )
        })?;
        auth.authorize(req.headers())
            .map(Self)
            .map_err(|e| ApiError::unauthorized(e).into())
    }
}
