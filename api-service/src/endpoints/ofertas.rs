//! The ofertas endpoints poem-openapi serves: the snapshot's metadata and refresh
//! requests (the snapshot itself is [`crate::endpoints::snapshot_route`]).

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query};

use shared::sha256::Sha256;

use crate::endpoints::refresh::{RefreshEndpoint, RefreshReply};
use crate::request::bearer::BearerAuth;
use crate::request::errors::{ApiError, ErrorBody};
use crate::snapshot::CurrentSnapshot;

/// Metadata of the snapshot being served.
#[derive(Object)]
pub struct MetaBody {
    /// Snapshot version.
    pub version: String,
    /// ETag of the identity document.
    pub etag: String,
    /// Number of offers.
    pub count: u64,
    /// When the snapshot was generated.
    pub generated_at: String,
    /// Seconds since then.
    pub age_seconds: f64,
    /// Identity document size.
    pub json_bytes: u64,
    /// gzip body size.
    pub gzip_bytes: u64,
    /// zstd body size.
    pub zstd_bytes: u64,
    /// Lowercase hex SHA-256 of the identity document: what `Available-Dictionary` names
    /// once a client holds it.
    pub json_sha256: Sha256,
    /// The earlier versions a `dcz` delta to this one is ready from.
    pub deltas: Vec<DeltaBody>,
}

/// A `dcz` delta ready to be served.
#[derive(Object)]
pub struct DeltaBody {
    /// The earlier version whose identity document is the dictionary.
    pub version: String,
    /// Lowercase hex SHA-256 of that document, as `Available-Dictionary` names it.
    pub json_sha256: Sha256,
    /// Size of the dcz body.
    pub dcz_bytes: u64,
}

/// Responses of the metadata endpoint.
#[derive(ApiResponse)]
pub enum MetaResponse {
    /// The metadata.
    #[oai(status = 200)]
    Ok(Json<MetaBody>),
    /// Missing or invalid token.
    // Declared only: `BearerAuth` refuses the token with `ApiError::unauthorized`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No snapshot has been loaded yet.
    // Declared only: answered by `ApiError::no_snapshot`, as the snapshot route does.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

/// The ofertas endpoints.
pub struct OfertasApi {
    /// The snapshot served.
    pub current: Arc<CurrentSnapshot>,
    /// Where refresh requests go.
    pub refresh: Arc<RefreshEndpoint>,
}

#[OpenApi]
impl OfertasApi {
    /// Metadata of the snapshot being served.
    #[oai(path = "/api/v4/ofertasws/meta", method = "get")]
    async fn meta(&self, _auth: BearerAuth) -> poem::Result<MetaResponse> {
        match self.current.get() {
            Some(snapshot) => {
                let meta = &snapshot.meta;
                let age =
                    (chrono::Utc::now() - meta.generated_at).num_milliseconds() as f64 / 1000.0;
                Ok(MetaResponse::Ok(Json(MetaBody {
                    version: meta.version.clone(),
                    etag: meta.etag.clone(),
                    count: meta.count,
                    generated_at: meta.generated_at_string(),
                    age_seconds: age.max(0.0),
                    json_bytes: meta.json_bytes,
                    gzip_bytes: meta.gzip_bytes,
                    zstd_bytes: meta.zstd_bytes,
                    json_sha256: snapshot.json_sha256,
                    deltas: snapshot
                        .deltas
                        .iter()
                        .map(|d| DeltaBody {
                            version: d.delta.version.clone(),
                            json_sha256: d.delta.json_sha256,
                            dcz_bytes: d.delta.dcz_bytes,
                        })
                        .collect(),
                })))
            }
            None => Err(ApiError::no_snapshot().into()),
        }
    }

    /// Asks the refresh service for a refresh (role `admin` or scope `ofertas:refresh`).
    ///
    /// By default waits up to `timeout` seconds (0 to 300, default 30; 0 counts as 1)
    /// for the outcome; `wait=false` returns 202 at once.
    #[oai(path = "/api/v4/ofertasws/refresh", method = "post")]
    async fn refresh(
        &self,
        auth: BearerAuth,
        wait: Query<Option<bool>>,
        #[oai(validator(minimum(value = "0"), maximum(value = "300")))] timeout: Query<Option<u64>>,
    ) -> RefreshReply {
        let claims = auth.0;
        if !claims.can_refresh() {
            return RefreshReply::Forbidden(Json(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "refresh needs role admin or scope ofertas:refresh",
                )
                .body(),
            ));
        }
        let timeout = Duration::from_secs(timeout.0.unwrap_or(30).clamp(1, 300));
        self.refresh
            .request(claims.sub.as_deref(), wait.0.unwrap_or(true), timeout)
            .await
    }
}
