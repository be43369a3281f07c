//! The one place errors become the contract's JSON body `{"error", "message"}`, with the
//! headers that go with them, for the snapshot route and the poem endpoints alike.
//!
//! Each error a request can meet before its handler's own work is built here once: a
//! refused token ([`ApiError::unauthorized`], 401 with `WWW-Authenticate`), a method the
//! route does not answer ([`ApiError::method_not_allowed`], 405 with `Allow`), no snapshot yet
//! ([`ApiError::no_snapshot`], 503 with `Retry-After`). Anything else poem or
//! poem-openapi raises (a malformed parameter, an unknown route) is converted by
//! [`render`], so no response is ever plain text or HTML. A 5xx body says nothing
//! internal; the cause goes to the log once.

use std::borrow::Cow;
use std::error::Error as StdError;

use bytes::Bytes;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;

use crate::request::auth::AuthError;
use crate::request::route_table::Route;

/// Seconds a client is told to wait when no snapshot is loaded yet.
pub const RETRY_AFTER_SECS: u32 = 5;

/// `WWW-Authenticate` sent with every 401.
pub const WWW_AUTHENTICATE: &str = r#"Bearer realm="ofertasws""#;

/// The JSON error body.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `unauthorized`, `no_snapshot`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The header some errors carry besides the body.
#[derive(Debug, Clone, Copy)]
enum Extra {
    /// `Allow` of a 405: the methods the route answers.
    Allow(&'static str),
    /// `Retry-After` of a 503 before the first snapshot.
    RetryAfter,
}

/// An error with its status, contract code, the header that goes with it, and its cause.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Contract error code.
    pub code: &'static str,
    /// Message for the client.
    pub message: Cow<'static, str>,
    /// A header the status calls for.
    header: Option<Extra>,
    /// What caused it, for the log.
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl ApiError {
    /// An error of `status` with `code` and `message`.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            header: None,
            source: None,
        }
    }

    /// 401 for a refused token, saying why.
    pub fn unauthorized(error: AuthError) -> Self {
        let message = error.to_string();
        Self {
            source: Some(Box::new(error)),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    /// 503: no snapshot has been loaded yet; try again in [`RETRY_AFTER_SECS`].
    pub fn no_snapshot() -> Self {
        Self {
            header: Some(Extra::RetryAfter),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_snapshot",
                "no snapshot has been published yet",
            )
        }
    }

    /// 405 naming in `Allow` the methods `route` answers.
    pub fn method_not_allowed(route: Route) -> Self {
        Self {
            header: route.allow().map(Extra::Allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
            )
        }
    }

    /// Whether `route` answers `method` (the snapshot route's check; poem's router makes
    /// it for the others): a comparison per method, no allocation, as it runs on every
    /// request. Unknown paths pass (they are a 404).
    ///
    /// # Errors
    /// [`Self::method_not_allowed`].
    pub fn check_method(route: Route, method: &Method) -> Result<(), Self> {
        if route == Route::Other || route.answers(method) {
            Ok(())
        } else {
            Err(Self::method_not_allowed(route))
        }
    }

    /// The body as an [`ErrorBody`].
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code.to_owned(),
            message: self.message.clone().into_owned(),
        }
    }

    /// The contract's JSON response: this status, the body, `WWW-Authenticate` on a 401
    /// and the error's own header.
    pub fn response(&self) -> poem::http::Response<Bytes> {
        // Serialising a struct of two strings into a Vec cannot fail (serde_json fails
        // only on a failing writer or a non-string map key); were it ever to, the status
        // and headers still go out, the body is empty and the cause is logged.
        let body = serde_json::to_vec(&self.body()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialise an error body");
            Vec::new()
        });
        let mut response = poem::http::Response::new(Bytes::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
        }
        match self.header {
            Some(Extra::Allow(allow)) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Some(Extra::RetryAfter) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            None => {}
        }
        response
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        poem_response(self.response())
    }
}

/// A response built as plain `http` parts (the shape [`crate::http::server`] sends), as
/// poem's.
pub fn poem_response(response: poem::http::Response<Bytes>) -> Response {
    let (parts, body) = response.into_parts();
    let mut converted = Response::builder().status(parts.status).body(body);
    *converted.headers_mut() = parts.headers;
    converted
}

/// Converts any error that reached the top into the contract's JSON response.
pub async fn render(error: poem::Error) -> Response {
    if let Some(api) = error.downcast_ref::<ApiError>() {
        return poem::error::ResponseError::as_response(api);
    }
    let status = error.status();
    let api = match status {
        StatusCode::UNAUTHORIZED => ApiError::unauthorized(AuthError::Missing),
        StatusCode::NOT_FOUND => ApiError::new(status, "not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(Route::Other),
        s if s.is_server_error() => {
            tracing::error!(error = %error, status = s.as_u16(), "request failed");
            ApiError::new(status, "internal", "internal error")
        }
        s if s.is_client_error() => ApiError::new(status, "bad_request", error.to_string()),
        _ => ApiError::new(status, "error", error.to_string()),
    };
    poem::error::ResponseError::as_response(&api).into_response()
}
