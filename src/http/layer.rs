//! What the layers in this directory share: each says what it does *around* the rest of the
//! stack ([`Around`]), and [`AroundLayer`] turns that into a tower layer.
//!
//! Why not `axum::middleware::from_fn`: each `from_fn` layer clones the stack below it and
//! boxes it again for every request. Measured on `GET /users/{id}` with callgrind
//! (scripts/bench-lib/profile-callgrind, user-space instructions per request, user-service /
//! api-gateway): the single `observe` function these layers replace 62.1k / 65.6k, the same
//! layers as `from_fn` 73.0k / 76.3k (+17 %), as [`Around`] layers 60.2k / 63.1k. Here a layer
//! calls the next one directly; its only per-request cost is one boxed future.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{extract::Request, response::Response};
use tower::{Layer, Service};

/// The future of every layer of the stack.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The service below a layer.
pub trait Inner:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static> + Clone + Send + 'static
{
}

impl<S> Inner for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static> + Clone + Send + 'static
{
}

/// One layer: given the request and the rest of the stack (ready to be called once), answer.
pub trait Around: Clone + Send + Sync + 'static {
    fn around<S: Inner>(&self, req: Request, inner: &mut S) -> ResponseFuture;
}

#[derive(Clone)]
pub struct AroundLayer<A>(pub A);

impl<A: Around, S> Layer<S> for AroundLayer<A> {
    type Service = Wrapped<A, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Wrapped {
            around: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Wrapped<A, S> {
    around: A,
    inner: S,
}

impl<A: Around, S: Inner> Service<Request> for Wrapped<A, S> {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> ResponseFuture {
        self.around.around(req, &mut self.inner)
    }
}
