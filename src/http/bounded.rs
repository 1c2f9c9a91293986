//! What one request may take (`MAX_REQUESTS`, `REQUEST_TIMEOUT`), as one tower service: a
//! place among those handled at once, or 503 `unavailable` at once; and at most the timeout,
//! or 408. It replaces four tower layers (error handling, load shedding, a global
//! concurrency limit, a timeout), the first of which cloned the boxed route stack beneath it
//! on every request.

use super::error::AppError;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Wraps routes in [`Bounded`]; every route shares one count.
#[derive(Clone)]
pub struct BoundedLayer {
    places: Arc<Semaphore>,
    timeout: Duration,
}

impl BoundedLayer {
    /// At most `concurrent` requests at once, each at most `timeout`.
    pub fn new(concurrent: usize, timeout: Duration) -> Self {
        Self {
            places: Arc::new(Semaphore::new(concurrent)),
            timeout,
        }
    }
}

impl<S> tower::Layer<S> for BoundedLayer {
    type Service = Bounded<S>;

    fn layer(&self, inner: S) -> Bounded<S> {
        Bounded {
            inner,
            places: Arc::clone(&self.places),
            timeout: self.timeout,
        }
    }
}

/// A route whose requests take a place (or are shed) and time out.
#[derive(Clone)]
pub struct Bounded<S> {
    inner: S,
    places: Arc<Semaphore>,
    timeout: Duration,
}

impl<S> tower::Service<Request> for Bounded<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Ok(place) = Arc::clone(&self.places).try_acquire_owned() else {
            return Box::pin(std::future::ready(
                Ok(AppError::Unavailable.into_response()),
            ));
        };
        let answer = self.inner.call(request);
        let timeout = self.timeout;
        Box::pin(async move {
            let answered = tokio::time::timeout(timeout, answer).await;
            drop(place);
            match answered {
                Ok(Ok(response)) => Ok(response),
                Err(_) => Ok(StatusCode::REQUEST_TIMEOUT.into_response()),
            }
        })
    }
}
