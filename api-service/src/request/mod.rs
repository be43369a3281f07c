//! What every request goes through, written once and called by the snapshot route and
//! the poem endpoints alike.
//!
//! The token: [`auth`] verifies it (and remembers verified ones), [`claims`] types what
//! it grants, [`bearer`] is the poem-openapi security scheme calling [`auth`]. Every error
//! response with its headers: [`errors`]. Every route named once: [`route_table`]. The
//! request headers the snapshot route reads: [`negotiate`] (`Accept-Encoding`,
//! `Available-Dictionary`) and [`preconditions`] (`If-None-Match`, `If-Modified-Since`).
//!
//! A folder of its own rather than part of `endpoints/`: the snapshot holds its entity
//! tags as [`preconditions::EntityTags`] and the metrics are labelled by
//! [`route_table::Route`], and both of those are used by the endpoints, so these concerns
//! sit below all three. Nothing here uses another layer of the API but its settings.

pub mod auth;
pub mod bearer;
pub mod claims;
pub mod errors;
pub mod negotiate;
pub mod preconditions;
pub mod route_table;
