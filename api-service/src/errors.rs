//! The one place errors become the contract's JSON body `{"error", "message"}`.
//!
//! Handlers return [`ApiError`] for expected failures; anything else poem or
//! poem-openapi raises (a missing token, a malformed parameter, an unknown route) is
//! converted by [`render`], so no response is ever plain text or HTML. A 5xx body says
//! nothing internal; the cause goes to the log once.

use bytes::Bytes;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;

/// The JSON error body.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `unauthorized`, `no_snapshot`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// An error with its status and contract code.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Contract error code.
    pub code: &'static str,
    /// Message for the client.
    pub message: String,
}

impl ApiError {
    /// An error of `status` with `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401 for a refused token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The body as an [`ErrorBody`].
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code.to_owned(),
            message: self.message.clone(),
        }
    }
}

/// `WWW-Authenticate` sent with every 401.
pub const WWW_AUTHENTICATE: &str = r#"Bearer realm="ofertasws""#;

impl ApiError {
    /// The contract's JSON response: this status, the body, and `WWW-Authenticate` on a
    /// 401.
    pub fn response(&self) -> poem::http::Response<Bytes> {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
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

/// A response built as plain `http` parts (the shape [`crate::server`] sends), as poem's.
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
    let (code, message) = match status {
        StatusCode::UNAUTHORIZED => (
            "unauthorized",
            "missing or malformed bearer token".to_owned(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such resource".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed".to_owned()),
        s if s.is_server_error() => {
            tracing::error!(error = %error, status = s.as_u16(), "request failed");
            ("internal", "internal error".to_owned())
        }
        s if s.is_client_error() => ("bad_request", error.to_string()),
        _ => ("error", error.to_string()),
    };
    poem::error::ResponseError::as_response(&ApiError::new(status, code, message)).into_response()
}
