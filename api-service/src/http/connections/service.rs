//! The service side of a connection's deadlines: the service tells the connection's
//! [`super::GuardedIo`] when a request's head is complete (the service is called with it)
//! and when its response is done (hyper drops the response body), which only the service
//! can see.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use hyper::body::{Body, Frame, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response};

use super::phase::Phase;

/// Tells a connection's [`super::GuardedIo`] when the service gets a request and when its
/// response is done.
pub struct Watch(Arc<Phase>);

impl Watch {
    pub(super) fn new(phase: Arc<Phase>) -> Self {
        Self(phase)
    }

    /// `service`, reporting its requests and responses to the connection's timer.
    pub fn service<S>(self, service: S) -> Watched<S> {
        Watched {
            inner: service,
            phase: self.0,
        }
    }
}

/// A service whose calls mark the connection's head complete and whose responses,
/// once hyper is done with their bodies, mark the connection idle again.
pub struct Watched<S> {
    inner: S,
    phase: Arc<Phase>,
}

impl<S, In, Out> Service<Request<In>> for Watched<S>
where
    S: Service<Request<In>, Response = Response<Out>>,
    S::Future: Unpin,
    In: Body,
{
    type Response = Response<Tracked<Out>>;
    type Error = S::Error;
    type Future = Responding<S::Future>;

    fn call(&self, request: Request<In>) -> Self::Future {
        self.phase.request(!request.body().is_end_stream());
        Responding {
            inner: self.inner.call(request),
            phase: Some(self.phase.clone()),
        }
    }
}

/// A [`Watched`] service's response on its way.
pub struct Responding<F> {
    inner: F,
    phase: Option<Arc<Phase>>,
}

impl<F, Out, E> Future for Responding<F>
where
    F: Future<Output = Result<Response<Out>, E>> + Unpin,
{
    type Output = Result<Response<Tracked<Out>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = ready!(Pin::new(&mut self.inner).poll(cx));
        let phase = self.phase.take();
        Poll::Ready(match result {
            Ok(response) => Ok(response.map(|body| Tracked { body, phase })),
            Err(e) => {
                if let Some(phase) = phase {
                    phase.responded();
                }
                Err(e)
            }
        })
    }
}

/// A response body that marks the connection idle when hyper drops it, which it does
/// as soon as it has taken the last of it (at once for a body known to be empty).
pub struct Tracked<B> {
    body: B,
    phase: Option<Arc<Phase>>,
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if let Some(phase) = &self.phase {
            phase.responded();
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
