//! The snapshot route in the OpenAPI document, declared without a handler.
//!
//! [`crate::endpoints::snapshot_route`] answers `GET`/`HEAD /api/v4/ofertasws` before
//! poem sees the request, so poem-openapi never serves it; [`SnapshotRouteDoc`]
//! implements [`OpenApi`](trait@poem_openapi::OpenApi) by hand to describe it (statuses,
//! headers, bodies, security) and adds no route. The body's schema is that of the type
//! refresh-service serialises ([`shared::document`]). `tests/it/operations.rs` drives the
//! server into every status declared here and checks each response against its
//! declaration.

use std::collections::HashMap;

use poem::http::Method;
use poem_openapi::registry::{
    MetaApi, MetaHeader, MetaMediaType, MetaOperation, MetaOperationParam, MetaParamIn, MetaPath,
    MetaResponse, MetaResponses, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, OpenApi};

use shared::document::SnapshotDocument;

use crate::request::bearer::BearerAuth;
use crate::request::errors::ErrorBody;
use crate::request::route_table::SNAPSHOT_PATH;

/// What a documented response carries.
#[derive(Clone, Copy)]
enum Payload {
    /// The snapshot document (in the negotiated encoding).
    Document,
    /// The contract's JSON error body.
    Error,
    /// Nothing.
    Empty,
}

/// A header of a documented response: name, whether always sent, integer or text.
type Header = (&'static str, bool, Kind);

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Count,
}

const OK_HEADERS: &[Header] = &[
    ("Content-Encoding", false, Kind::Text),
    ("Content-Length", true, Kind::Count),
    ("ETag", true, Kind::Text),
    ("Last-Modified", true, Kind::Text),
    ("Cache-Control", true, Kind::Text),
    ("Vary", true, Kind::Text),
    ("X-Ofertas-Count", true, Kind::Count),
    ("Use-As-Dictionary", true, Kind::Text),
];
const NOT_MODIFIED_HEADERS: &[Header] = &[
    ("ETag", true, Kind::Text),
    ("Last-Modified", true, Kind::Text),
    ("Cache-Control", true, Kind::Text),
    ("Vary", true, Kind::Text),
];

/// Every response of the route: status, description, payload, headers.
const RESPONSES: &[(u16, &str, Payload, &[Header])] = &[
    (
        200,
        "The snapshot document in the best encoding the request accepts: `dcz` (a delta from \
         the dictionary `Available-Dictionary` names), `zstd`, `gzip` or none.",
        Payload::Document,
        OK_HEADERS,
    ),
    (
        304,
        "The client's copy (any encoding of the current snapshot) is current.",
        Payload::Empty,
        NOT_MODIFIED_HEADERS,
    ),
    (
        401,
        "Missing or invalid token.",
        Payload::Error,
        &[("WWW-Authenticate", true, Kind::Text)],
    ),
    (
        406,
        "The request refuses every encoding the API has.",
        Payload::Error,
        &[],
    ),
    (
        503,
        "No snapshot has been loaded yet.",
        Payload::Error,
        &[("Retry-After", true, Kind::Count)],
    ),
];

fn responses() -> MetaResponses {
    let header = |&(name, required, kind): &Header| MetaHeader {
        name: name.to_ascii_uppercase(),
        description: None,
        required,
        deprecated: false,
        schema: match kind {
            Kind::Text => String::schema_ref(),
            Kind::Count => u64::schema_ref(),
        },
    };
    let content = |payload| match payload {
        Payload::Document => vec![media(SnapshotDocument::schema_ref())],
        Payload::Error => vec![media(ErrorBody::schema_ref())],
        Payload::Empty => Vec::new(),
    };
    MetaResponses {
        responses: RESPONSES
            .iter()
            .map(|&(status, description, payload, headers)| MetaResponse {
                description,
                status: Some(status),
                status_range: None,
                content: content(payload),
                headers: headers.iter().map(header).collect(),
            })
            .collect(),
    }
}

fn media(schema: MetaSchemaRef) -> MetaMediaType {
    MetaMediaType {
        content_type: "application/json",
        schema,
    }
}

/// The request headers the route reads, with what each does.
const REQUEST_HEADERS: [(&str, &str); 4] = [
    (
        "Accept-Encoding",
        "`dcz`, `zstd`, `gzip`, `identity`, `*`, with q-values.",
    ),
    (
        "Available-Dictionary",
        "RFC 9842: `:base64 SHA-256:` of an earlier identity document this client holds; \
         a delta from it is sent as `dcz` when ready. Unknown or malformed values are ignored.",
    ),
    (
        "If-None-Match",
        "ETags of the client's copy (any representation), or `*`.",
    ),
    ("If-Modified-Since", "Used only without `If-None-Match`."),
];

fn parameters() -> Vec<MetaOperationParam> {
    REQUEST_HEADERS
        .iter()
        .map(|&(name, description)| MetaOperationParam {
            name: name.to_owned(),
            schema: String::schema_ref(),
            in_type: MetaParamIn::Header,
            description: Some(description.to_owned()),
            required: false,
            deprecated: false,
            explode: true,
            style: None,
        })
        .collect()
}

fn operation(method: Method, summary: &'static str, description: &'static str) -> MetaOperation {
    let security = <BearerAuth as ApiExtractor>::security_schemes()
        .into_iter()
        .map(|name| HashMap::from([(name, Vec::new())]))
        .collect();
    MetaOperation {
        method,
        tags: Vec::new(),
        summary: Some(summary),
        description: (!description.is_empty()).then_some(description),
        external_docs: None,
        params: parameters(),
        request: None,
        responses: responses(),
        deprecated: false,
        security,
        operation_id: None,
        code_samples: Vec::new(),
    }
}

/// `GET`/`HEAD /api/v4/ofertasws` as the OpenAPI document shows them.
pub struct SnapshotRouteDoc;

impl OpenApi for SnapshotRouteDoc {
    fn meta() -> Vec<MetaApi> {
        vec![MetaApi {
            paths: vec![MetaPath {
                path: SNAPSHOT_PATH.to_owned(),
                operations: vec![
                    operation(
                        Method::GET,
                        "The current snapshot of live offers, ranked.",
                        "Sent as a `dcz` delta, zstd, gzip or uncompressed as `Accept-Encoding` \
                         allows (q-values honoured; `dcz` only with an `Available-Dictionary` \
                         naming a version a delta is ready from); `If-None-Match` with any of \
                         the snapshot's ETags (or `*`), or else `If-Modified-Since`, yields 304.",
                    ),
                    operation(
                        Method::HEAD,
                        "Headers of `GET /api/v4/ofertasws`, without the body.",
                        "",
                    ),
                ],
            }],
        }]
    }

    fn register(registry: &mut Registry) {
        SnapshotDocument::register(registry);
        ErrorBody::register(registry);
        <BearerAuth as ApiExtractor>::register(registry);
    }

    /// None: [`crate::http::server`] answers the route with
    /// [`crate::endpoints::snapshot_route`].
    fn add_routes(
        self,
        _routes: &mut HashMap<String, HashMap<Method, poem::endpoint::BoxEndpoint<'static>>>,
    ) {
    }
}
