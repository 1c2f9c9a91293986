//! What keeps publishing safe when the sink misbehaves: retry delays with backoff and jitter
//! ([`retry`]), the circuit breaker around the publisher ([`breaker`]), and the failure policy
//! that decides, for every publish attempt, between acknowledging, retrying, pausing and
//! dead-lettering ([`policy`]). The decisions are pure; [`Resilience::publish_one`] is the one
//! place that calls the sink. The relay, the CDC outlet and the dead letter replayer apply it.

pub mod breaker;
pub mod policy;
pub mod retry;

use crate::publish::{Delivery, Message, PublishError, Publisher};
use policy::Attempt;
use std::sync::Arc;

/// What every publisher path shares about one sink: how it retries, the circuit breaker, and
/// the order in which messages were handed to the sink (the policy's evidence).
#[derive(Debug, Clone)]
pub struct Resilience {
    pub retry: retry::RetryConfig,
    pub breaker: Arc<breaker::CircuitBreaker>,
    pub sent: Arc<policy::SendOrder>,
}

impl Resilience {
    /// `retry` and a closed `breaker`, with a fresh send order.
    pub fn new(retry: retry::RetryConfig, breaker: Arc<breaker::CircuitBreaker>) -> Self {
        Self {
            retry,
            breaker,
            sent: Arc::default(),
        }
    }

    /// Publishes one message the breaker let through, in the send order, and tells the
    /// breaker how it went. Returns the outcome and the message's send-order ticket (the
    /// failure policy's evidence is whether the sink took messages handed over after it).
    pub async fn publish_one(
        &self,
        publisher: &dyn Publisher,
        message: &Message,
    ) -> (Result<Delivery, PublishError>, u64) {
        let ticket = self.sent.issue(1);
        let result = publisher
            .publish(std::slice::from_ref(message))
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(PublishError::unanswered("the sink reported no outcome")));
        let attempt = match &result {
            Ok(_) => {
                self.sent.taken(ticket);
                Attempt::Acknowledged
            }
            Err(e) => Attempt::Failed(e.kind),
        };
        let later = self.sent.took_later_than(ticket);
        let error = result.as_ref().err().map_or("", |e| e.message.as_str());
        self.breaker.report(policy::health(attempt, later), error);
        (result, ticket)
    }
}
