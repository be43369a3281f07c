//! The ofertas endpoints: the snapshot itself, its metadata, and refresh requests.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::{IntoResponse, Request, Response};
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, param::Query};

use crate::auth::{Authenticator, Claims};
use crate::errors::{ApiError, ErrorBody, poem_response};
use crate::refresh::{RefreshEndpoint, RefreshReply};
use crate::snapshot_cache::SnapshotCache;
use crate::snapshot_route::{RETRY_AFTER_SECS, reply};

/// A verified bearer token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "verify_bearer")]
pub struct BearerAuth(Arc<Claims>);

async fn verify_bearer(req: &Request, bearer: Bearer) -> poem::Result<Arc<Claims>> {
    let auth = req.data::<Arc<Authenticator>>().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "authenticator missing",
        )
    })?;
    auth.verify(&bearer.token)
        .map_err(|e| ApiError::unauthorized(e.to_string()).into())
}

/// The snapshot document: the live offers, ranked.
// Declared for the OpenAPI document only: the API serves the bytes refresh-service wrote.
#[derive(Object)]
struct SnapshotDocument {
    /// Snapshot version.
    version: String,
    /// When the snapshot was generated (`2026-11-22T15:00:00.123Z`).
    generated_at: String,
    /// Number of offers, the length of `ofertas`.
    count: u64,
    /// The live offers by score descending, then id ascending.
    ofertas: Vec<Oferta>,
}

/// One live offer of the snapshot document.
#[derive(Object)]
struct Oferta {
    /// Offer id.
    id: i64,
    /// Merchant id.
    merchant_id: i64,
    /// Merchant name.
    merchant_name: String,
    /// Title.
    title: String,
    /// Description.
    #[oai(nullable)]
    description: Option<String>,
    /// Category.
    category: String,
    /// Price, a decimal string.
    price: String,
    /// Price before the discount, a decimal string.
    #[oai(nullable)]
    original_price: Option<String>,
    /// Discount in percent (one decimal).
    #[oai(nullable)]
    discount_pct: Option<f64>,
    /// ISO 4217 currency code.
    currency: String,
    /// Image URL.
    #[oai(nullable)]
    image_url: Option<String>,
    /// Start of the offer.
    starts_at: String,
    /// End of the offer; open-ended when null.
    #[oai(nullable)]
    ends_at: Option<String>,
    /// Ranking score, 0..1 (six decimals).
    score: f64,
}

/// The responses of [`reply`], declared for the OpenAPI document.
#[derive(ApiResponse)]
#[expect(dead_code, reason = "documents the responses of snapshot_route::reply")]
enum SnapshotDoc {
    /// The snapshot document in the best encoding the request accepts.
    #[oai(status = 200, content_type = "application/json")]
    Ok(
        Json<SnapshotDocument>,
        #[oai(header = "Content-Encoding")] Option<String>,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "ETag")] String,
        #[oai(header = "Last-Modified")] String,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Vary")] String,
        #[oai(header = "X-Ofertas-Count")] u64,
    ),
    /// The client's copy (any encoding of the current snapshot) is current.
    #[oai(status = 304)]
    NotModified(
        #[oai(header = "ETag")] String,
        #[oai(header = "Vary")] String,
    ),
    /// Missing or invalid token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The request refuses every encoding the API has.
    #[oai(status = 406)]
    NotAcceptable(Json<ErrorBody>),
    /// No snapshot has been loaded yet.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

/// A snapshot response from [`reply`], whose headers were prepared once per snapshot.
pub struct SnapshotReply(Response);

impl IntoResponse for SnapshotReply {
    fn into_response(self) -> Response {
        self.0
    }
}

impl ApiResponse for SnapshotReply {
    fn meta() -> MetaResponses {
        SnapshotDoc::meta()
    }

    fn register(registry: &mut Registry) {
        SnapshotDoc::register(registry);
    }
}

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
}

/// Responses of the metadata endpoint.
#[derive(ApiResponse)]
pub enum MetaResponse {
    /// The metadata.
    #[oai(status = 200)]
    Ok(Json<MetaBody>),
    /// Missing or invalid token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No snapshot has been loaded yet.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

/// The ofertas endpoints.
pub struct OfertasApi {
    /// The snapshot served.
    pub cache: Arc<SnapshotCache>,
    /// Refresh requests.
    pub refresh: Arc<RefreshEndpoint>,
}

#[OpenApi]
impl OfertasApi {
    /// The current snapshot of live offers, ranked.
    ///
    /// Sent zstd, gzip or uncompressed as `Accept-Encoding` allows (q-values honoured);
    /// `If-None-Match` with any of the snapshot's ETags (or `*`), or else
    /// `If-Modified-Since`, yields 304.
    #[oai(path = "/api/v4/ofertasws", method = "get")]
    async fn ofertas(&self, req: &Request, _auth: BearerAuth) -> SnapshotReply {
        SnapshotReply(poem_response(reply(&self.cache, req.headers())))
    }

    /// Headers of `GET /api/v4/ofertasws`, without the body.
    #[oai(path = "/api/v4/ofertasws", method = "head")]
    async fn ofertas_head(&self, req: &Request, _auth: BearerAuth) -> SnapshotReply {
        SnapshotReply(poem_response(reply(&self.cache, req.headers())))
    }

    /// Metadata of the snapshot being served.
    #[oai(path = "/api/v4/ofertasws/meta", method = "get")]
    async fn meta(&self, _auth: BearerAuth) -> MetaResponse {
        match self.cache.current() {
            Some(snapshot) => {
                let meta = &snapshot.meta;
                let age =
                    (chrono::Utc::now() - meta.generated_at).num_milliseconds() as f64 / 1000.0;
                MetaResponse::Ok(Json(MetaBody {
                    version: meta.version.clone(),
                    etag: meta.etag.clone(),
                    count: meta.count,
                    generated_at: meta.generated_at_string(),
                    age_seconds: age.max(0.0),
                    json_bytes: meta.json_bytes,
                    gzip_bytes: meta.gzip_bytes,
                    zstd_bytes: meta.zstd_bytes,
                }))
            }
            None => MetaResponse::Unavailable(
                Json(
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no_snapshot",
                        "no snapshot has been published yet",
                    )
                    .body(),
                ),
                RETRY_AFTER_SECS,
            ),
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
