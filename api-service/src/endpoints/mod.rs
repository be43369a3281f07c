//! What the API answers.
//!
//! [`snapshot_route`] answers `GET`/`HEAD /api/v4/ofertasws` from the request head alone,
//! served by the HTTP layer itself (it is the server's
//! [`FastRoute`](crate::http::server::FastRoute)); [`snapshot_doc`] declares it in the
//! OpenAPI document. Every other route goes through poem and poem-openapi: the
//! snapshot's metadata and refresh requests ([`ofertas`], [`refresh`]), liveness,
//! readiness and metrics ([`health`]), and the OpenAPI document and Swagger UI made from
//! them (mounted by [`crate::startup::app`]). [`observe`] records every request's metrics
//! and span, for the snapshot route and the poem endpoints alike.

pub mod health;
pub mod observe;
pub mod ofertas;
pub mod refresh;
pub mod snapshot_doc;
pub mod snapshot_route;
