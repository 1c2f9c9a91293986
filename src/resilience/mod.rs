//! What keeps publishing safe when the sink misbehaves: retry delays with backoff and jitter
//! ([`retry`]), the circuit breaker around the publisher ([`breaker`]), and the dead letter
//! queue with replay ([`dlq`]). The relay (`crate::relay`) applies them.

pub mod breaker;
pub mod retry;
