//! The response future of [`RateLimit`](super::RateLimit).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use super::limiter::Verdict;
use super::policy::Policy;
use super::response::{rate_limit_headers, too_many_requests, unavailable};

pin_project! {
    /// Checks the limit, then calls the inner service and adds the rate-limit headers.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        policy: Arc<Policy>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Checking {
            check: BoxFuture<'static, Verdict>,
            inner: Option<S>,
            req: Option<Request<B>>,
        },
        Calling {
            #[pin]
            future: S::Future,
            headers: Option<HeaderMap>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn new(
        check: BoxFuture<'static, Verdict>,
        inner: S,
        req: Request<B>,
        policy: Arc<Policy>,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                inner: Some(inner),
                req: Some(req),
            },
            policy,
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, inner, req } => {
                    let verdict = ready!(check.as_mut().poll(cx));
                    let policy = this.policy.as_ref();
                    let headers = match verdict {
                        Verdict::Limited(report) if policy.is_shadow() => {
                            tracing::warn!(
                                policy = policy.name(),
                                "shadow rate limit exceeded; request admitted"
                            );
                            let _ = report;
                            None
                        }
                        Verdict::Limited(report) => {
                            return Poll::Ready(Ok(too_many_requests(policy.name(), &report)));
                        }
                        Verdict::Unavailable => return Poll::Ready(Ok(unavailable())),
                        Verdict::Allowed(_) if policy.is_shadow() => None,
                        Verdict::Allowed(report) => {
                            Some(rate_limit_headers(policy.name(), &report))
                        }
                        Verdict::Exempt | Verdict::Unchecked => None,
                    };
                    let (Some(mut svc), Some(req)) = (inner.take(), req.take()) else {
                        // Polled after completion: a contract violation by the caller.
                        panic!("ResponseFuture polled after completion");
                    };
                    let future = svc.call(req);
                    this.state.set(State::Calling { future, headers });
                }
                StateProj::Calling { future, headers } => {
                    let mut res = ready!(future.poll(cx))?;
                    if let Some(h) = headers.take() {
                        res.headers_mut().extend(h);
                    }
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}
