//! `GET`/`HEAD /api/v4/ofertasws`, the request every app client repeats, answered from the
//! request head alone.
//!
//! [`crate::http::server`] hands such requests to [`SnapshotRoute::serve`] before poem's
//! router and middleware, which cost more per request than everything this route does;
//! this is the route's only implementation. What every route does besides its own work is
//! not written here but called, the same code the poem endpoints go through: the method
//! check and every error response ([`crate::request::errors`]), the token
//! ([`Authenticator::authorize`]), metrics and span ([`crate::endpoints::observe`]).
//! [`crate::endpoints::snapshot_doc`] declares the route in the OpenAPI document, and a
//! test checks the declaration against what this answers.

use std::sync::Arc;

use poem::http::{HeaderMap, Method, Response, StatusCode, header};
use tokio::net::TcpStream;

use shared::snapshot::Codec;

use crate::endpoints::observe::Observed;
use crate::http::sealed::BodyFiles;
use crate::http::server::FastRoute;
use crate::http::zero_copy::ZeroCopyStream;
use crate::metrics::Metrics;
use crate::request::auth::Authenticator;
use crate::request::errors::ApiError;
use crate::request::negotiate::{Choice, available_dictionary, negotiate};
use crate::request::preconditions::{Precondition, precondition};
use crate::request::route_table::{Route, SNAPSHOT_PATH};
use crate::snapshot::CurrentSnapshot;
use crate::snapshot::body::SnapshotBody;

/// The snapshot route with what it needs to answer on its own.
pub struct SnapshotRoute {
    current: Arc<CurrentSnapshot>,
    files: Arc<BodyFiles>,
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
}

impl SnapshotRoute {
    /// The route serving `current` (bodies held in `files`), checking tokens with `auth`
    /// and counting in `metrics`.
    pub fn new(
        current: Arc<CurrentSnapshot>,
        files: Arc<BodyFiles>,
        auth: Arc<Authenticator>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            current,
            files,
            auth,
            metrics,
        }
    }

    fn admit(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        ApiError::check_method(Route::Snapshot, method)?;
        self.auth
            .authorize(headers)
            .map(drop)
            .map_err(ApiError::unauthorized)
    }
}

impl FastRoute for SnapshotRoute {
    type Body = SnapshotBody;

    /// Whether a request for `path` is this route's (whatever its method: a method the
    /// route does not answer gets its 405 here too).
    fn handles(_method: &Method, path: &str) -> bool {
        path == SNAPSHOT_PATH
    }

    /// Answers one request: the method and the bearer token first, as every route
    /// checks them, then `reply`. The request is observed (metrics, span) as every
    /// request is.
    fn serve(&self, method: &Method, headers: &HeaderMap) -> Response<SnapshotBody> {
        let observed = Observed::start(method, headers, Route::Snapshot);
        let response = observed
            .span()
            .in_scope(|| match self.admit(method, headers) {
                Ok(()) => self.reply(headers, method == Method::HEAD),
                Err(error) => error_reply(&error),
            });
        let body_bytes = response.body().len();
        observed.finish(
            &self.metrics,
            response.status(),
            response.headers(),
            body_bytes,
        );
        response
    }

    /// The IO to serve an accepted connection on: it sends this route's bodies from the
    /// snapshot's files (see [`crate::http::zero_copy`]).
    fn stream(&self, connection: TcpStream) -> ZeroCopyStream {
        ZeroCopyStream::new(
            connection,
            self.files.clone(),
            self.metrics.sent_from_file(),
        )
    }
}

/// An error response of the route.
fn error_reply(error: &ApiError) -> Response<SnapshotBody> {
    error.response().map(SnapshotBody::full)
}

impl SnapshotRoute {
    /// The response to an authorised request: the snapshot in the best representation the
    /// request accepts (200; a dcz delta when its `Available-Dictionary` names a version a
    /// delta is held from), 304 when the client's copy is current (a matching
    /// `If-None-Match` wins over a dictionary), 406 when it accepts none of ours, 503
    /// before the first snapshot. Bodies and headers are the snapshot's own, so this
    /// copies no body and formats nothing.
    fn reply(&self, headers: &HeaderMap, head: bool) -> Response<SnapshotBody> {
        let snapshot = self.current.load();
        let Some(snapshot) = snapshot.as_deref() else {
            return error_reply(&ApiError::no_snapshot());
        };
        let delta = match available_dictionary(headers) {
            Some(dictionary) => {
                let delta = snapshot.delta_from(&dictionary);
                if delta.is_none() && !snapshot.is_own_document(&dictionary) {
                    self.metrics.dictionary_unmatched();
                }
                delta
            }
            None => None,
        };
        // A value that is not visible ASCII names no coding we know: as if absent.
        let accept = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let variant = match (negotiate(accept, delta.is_some()), delta) {
            (Some(Choice::Delta), Some(delta)) => delta,
            (Some(Choice::Whole(encoding)), _) => snapshot.variant(encoding),
            _ => {
                return error_reply(&ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "not_acceptable",
                    "the request accepts none of zstd, gzip or identity",
                ));
            }
        };
        let mut response = match precondition(headers, &snapshot.tags, snapshot.modified) {
            Precondition::NotModified => {
                let mut response = Response::new(SnapshotBody::full(Default::default()));
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                *response.headers_mut() = variant.not_modified_headers.clone();
                return response;
            }
            Precondition::Send => Response::new(variant.body()),
        };
        if !head && delta.is_some_and(|delta| std::ptr::eq(delta, variant)) {
            let zstd = snapshot.variant(Codec::Zstd).len;
            self.metrics.delta_sent(zstd.saturating_sub(variant.len));
        }
        *response.headers_mut() = variant.ok_headers.clone();
        response
    }
}
