//! The HTTP server: accepts TCP connections and serves them with hyper directly.
//!
//! poem's own `Server` wraps every connection in a boxed stream without vectored writes,
//! so hyper copies each response body into its write buffer before sending it. For a
//! 258 KB snapshot that copy was the largest cost of a request, and the buffer stayed
//! allocated per connection. Serving the connection here lets hyper hand bodies to
//! vectored writes as they are, and [`crate::http::zero_copy`] send the snapshot's with
//! `sendfile`.
//!
//! Requests for the snapshot itself are answered by the [`FastRoute`] (the snapshot
//! route) straight from the request head; every other request goes to the poem endpoint.
//!
//! Each accepted connection is admitted by [`Connections`] (or closed at once past
//! `API_MAX_CONNECTIONS`) and served by hyper with the limits of
//! [`crate::http::connections::builder`], on an IO that keeps the contract's deadlines
//! ([`GuardedIo`]).

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, ready};
use http_body_util::Either as BodyEither;
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::http::{HeaderMap, Method, Response};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, IntoEndpoint};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::http::connections::{Connections, GuardedIo, Throttle};
use crate::http::zero_copy::ZeroCopyStream;

/// How long accepting pauses after an error such as running out of file descriptors:
/// the connection waiting stays queued, so retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one warning per this interval while accepting keeps failing.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// The one route the server answers itself, from the request head alone, before poem's
/// router and middleware (which cost more per request than everything the route does):
/// the snapshot route. Generic so that this layer does not depend on the endpoints.
pub trait FastRoute: Send + Sync + 'static {
    /// The body of the route's responses.
    type Body: Body<Data = Bytes, Error = io::Error> + Send + Unpin + 'static;

    /// Whether a request for `path` is the route's (whatever its method: a method the
    /// route does not answer gets its 405 from the route too).
    fn handles(method: &Method, path: &str) -> bool;

    /// Answers one request from its method and headers.
    fn serve(&self, method: &Method, headers: &HeaderMap) -> Response<Self::Body>;

    /// The IO to serve an accepted connection on.
    fn stream(&self, connection: TcpStream) -> ZeroCopyStream;
}

/// What every connection is served with.
struct Served<R, E> {
    route: R,
    app: E,
    connections: Arc<Connections>,
    builder: auto::Builder<TokioExecutor>,
    local: LocalAddr,
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting and
/// gives open connections up to `grace` to finish their in-flight requests. At most
/// `API_MAX_CONNECTIONS` connections are served at once; the soft limit on open files
/// is raised first so that the cap, not `EMFILE`, is what a flood of connections meets.
///
/// Connections are tasks of the process's one multi-threaded runtime. One single-threaded
/// runtime per core (nginx's model, tried with `SO_REUSEPORT` listeners and with one
/// shared listener) served the 200 path no faster within the noise of `bench/serve.sh`
/// and doubled the 304 path's p99 (8 ms against 5 ms): 32 connections spread over two
/// threads once, at accept, leave one thread busier, which work stealing evens out.
pub async fn serve<R, E>(
    listener: TcpListener,
    route: R,
    app: E,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
    grace: Duration,
) where
    R: FastRoute,
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    connections.reserve_fds();
    let local = LocalAddr(
        listener
            .local_addr()
            .map_or(Addr::Custom("tcp", "".into()), Addr::SocketAddr),
    );
    let served = Arc::new(Served {
        route,
        app: app.into_endpoint(),
        builder: crate::http::connections::builder(connections.limits()),
        connections,
        local,
    });
    let graceful = GracefulShutdown::new();
    let accept_warnings = Throttle::new(ACCEPT_WARN_EVERY);
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e, &accept_warnings).await;
                    continue;
                }
            },
        };
        // Refused: dropping the stream resets the connection.
        let Some(slot) = served.connections.admit(&stream) else {
            continue;
        };
        let (io, watch) = GuardedIo::new(served.route.stream(prepare(stream)), slot);
        let io = TokioIo::new(io);
        let peer = RemoteAddr(Addr::SocketAddr(remote));
        let this = served.clone();
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            if R::handles(request.method(), request.uri().path()) {
                let response = this.route.serve(request.method(), request.headers());
                return Either::Left(ready(Ok(response.map(BodyEither::Left))));
            }
            let this = this.clone();
            let request =
                poem::Request::from((request, this.local.clone(), peer.clone(), Scheme::HTTP));
            // Boxed: hyper stores each request's future in place, sized for the larger
            // branch, and poem's is large; unboxed, every snapshot request copied it.
            Either::Right(Box::pin(async move {
                let response = Response::from(this.app.get_response(request).await);
                Ok::<_, Infallible>(response.map(BodyEither::Right))
            }))
        });
        let connection = served
            .builder
            .serve_connection(io, watch.service(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, client.address = %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the shutdown grace period");
        }
    }
}

/// Small responses (304s, errors) go out at once instead of waiting for Nagle.
fn prepare(stream: TcpStream) -> TcpStream {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    stream
}

/// Logs a failed `accept` (at most once per [`ACCEPT_WARN_EVERY`]) and pauses briefly
/// when the cause is not the one connection, such as `EMFILE` or `ENFILE`.
async fn accept_failed(error: &io::Error, warnings: &Throttle) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    if warnings.ready() {
        tracing::warn!(error = %error, "cannot accept connections; retrying every 100 ms");
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}
