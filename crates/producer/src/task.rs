//! Catching a background task's panic, so that it fails the producer loudly instead of leaving
//! records without an outcome.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that completes with `Err(message)` if polling `inner` panics.
///
/// Boxed rather than pin-projected so that it needs no `unsafe`: one allocation per background
/// task, which are per request at most.
pub(crate) struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> CatchPanic<F> {
    pub(crate) fn new(inner: F) -> Self {
        CatchPanic {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        // The task's state is abandoned after a panic, never polled again, so a broken
        // invariant inside it cannot be observed: the unwind-safety assertion holds.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Test builds only: panics if the producer's `client.id` is `test-panic-in-<task>`, so tests can
/// see what a bug in a background task does.
#[cfg(test)]
pub(crate) fn injected_panic(client_id: &str, task: &str) {
    if client_id.strip_prefix("test-panic-in-") == Some(task) {
        panic!("injected panic in the {task} task");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(CatchPanic::new(async { 7 }).await, Ok(7));
        let panicked = CatchPanic::new(async {
            tokio::task::yield_now().await;
            panic!("boom {}", 1);
        })
        .await;
        assert_eq!(panicked, Err::<(), _>("boom 1".to_string()));
    }
}
