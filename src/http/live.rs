//! `GET /api/live`: server-sent events. A `snapshot` event every 500 ms (aggregates only)
//! and discrete events as they happen: `breaker`, `published` samples and, for requests that
//! carry the admin token, `dlq`. Keep-alive comments every 15 s. A slow client only ever
//! gets the newest snapshot and skips discrete events it fell behind on (nothing queues for
//! it: the stream is only polled as fast as the client reads); every stream ends when the
//! server starts shutting down, and an admin stream opened with a console session ends when
//! that session is signed out or expires. At most `LIVE_MAX_CLIENTS` streams are open at once;
//! past it, 503 with `Retry-After`.

use super::AppState;
use super::auth::is_admin;
use super::error::AppError;
use super::session::Sessions;
use super::throttle::ClientAddr;
use crate::telemetry::live::{LiveEvent, Snapshot};
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, broadcast, watch};
use tokio_util::sync::CancellationToken;

/// A quiet stream gets a keep-alive comment this often.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often an admin stream checks that its console session is still signed in.
const SESSION_CHECK: Duration = Duration::from_secs(1);

/// One client's position in the feed.
struct Client {
    snapshots: watch::Receiver<Option<Snapshot>>,
    events: broadcast::Receiver<LiveEvent>,
    closing: CancellationToken,
    admin: bool,
    /// The console session an admin stream was opened with: the stream ends with it.
    session: Option<(Arc<Sessions>, String)>,
    /// The stream's place among `LIVE_MAX_CLIENTS`, given back when it ends.
    _slot: OwnedSemaphorePermit,
}

fn sse<T: serde::Serialize>(name: &str, value: &T) -> Event {
    Event::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

/// What a stream sends next.
#[derive(Debug)]
enum Item {
    Snapshot(Snapshot),
    Event(LiveEvent),
}

impl Item {
    fn into_sse(self) -> Event {
        match self {
            Item::Snapshot(s) => sse("snapshot", &s),
            Item::Event(e) => sse(e.name(), &e),
        }
    }
}

impl Client {
    /// The next item to send, or `None` when the stream ends (server shutting down).
    async fn next(&mut self) -> Option<Item> {
        let mut checks = tokio::time::interval(SESSION_CHECK);
        loop {
            tokio::select! {
                biased;
                // Shutdown began (or the server is gone).
                () = self.closing.cancelled() => return None,
                _ = checks.tick(), if self.session.is_some() => {
                    if let Some((sessions, token)) = &self.session
                        && !sessions.is_valid(token)
                    {
                        return None;
                    }
                }
                changed = self.snapshots.changed() => {
                    changed.ok()?;
                    let snapshot = self.snapshots.borrow_and_update().clone();
                    if let Some(s) = snapshot {
                        return Some(Item::Snapshot(s));
                    }
                }
                event = self.events.recv() => match event {
                    Ok(e) if e.admin_only() && !self.admin => {}
                    Ok(e) => return Some(Item::Event(e)),
                    // Fell behind: skip what was missed and carry on.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

pub async fn live(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let admin = is_admin(&Method::GET, &headers, client, &state)?;
    let slot = state.live.join().ok_or(AppError::TooManyLiveClients)?;
    let session = (state.sessions.token_in(&headers))
        .filter(|token| admin && state.sessions.is_valid(token))
        .map(|token| (Arc::clone(&state.sessions), token.to_string()));
    let mut snapshots = state.live.snapshots();
    // The current snapshot goes out first, without waiting for the next one.
    snapshots.mark_changed();
    let client = Client {
        snapshots,
        events: state.live.subscribe(),
        closing: state.live.closing(),
        admin,
        session,
        _slot: slot,
    };
    let stream = futures::stream::unfold(client, |mut client| async move {
        client
            .next()
            .await
            .map(|item| (Ok(item.into_sse()), client))
    });
    Ok(with_keep_alive(stream))
}

/// The SSE answer for `stream`, with a keep-alive comment whenever nothing was sent for
/// [`KEEP_ALIVE`] (so proxies do not close a quiet stream).
fn with_keep_alive<S>(stream: S) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::live::{EVENT_BUFFER, LiveHub};

    fn published(n: usize) -> LiveEvent {
        LiveEvent::Published {
            event_id: n.to_string(),
            event_type: "OrderCreated".into(),
            topic: "t".into(),
            latency_ms: 1,
        }
    }

    /// A client that reads nothing while ten thousand events go out has nothing queued for it
    /// beyond the shared ring of `EVENT_BUFFER`: reading again, it gets the newest of them
    /// (in order) and then waits for new ones.
    /// A stream with nothing to send gets a keep-alive comment every 15 s, and nothing
    /// before.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_keep_alive_comments() {
        use axum::response::IntoResponse;
        use http_body_util::BodyExt;
        let quiet = futures::stream::pending::<Result<Event, Infallible>>();
        let mut body = with_keep_alive(quiet).into_response().into_body();
        let started = tokio::time::Instant::now();
        for n in 1..=2 {
            let frame = body.frame().await.expect("a frame").expect("no error");
            let data = frame.into_data().expect("data");
            assert!(data.starts_with(b":"), "a comment: {data:?}");
            assert_eq!(started.elapsed(), n * KEEP_ALIVE);
        }
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_skips_instead_of_queueing() {
        let hub = LiveHub::new(CancellationToken::new(), 1);
        let mut client = Client {
            snapshots: hub.snapshots(),
            events: hub.subscribe(),
            closing: hub.closing(),
            admin: true,
            session: None,
            _slot: hub.join().expect("a slot"),
        };
        let sent = 10_000;
        for n in 0..sent {
            hub.send(published(n));
        }
        let mut received = Vec::new();
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(50), client.next()).await
        {
            match item {
                Item::Event(LiveEvent::Published { event_id, .. }) => received.push(event_id),
                other => panic!("unexpected {other:?}"),
            }
        }
        let newest: Vec<String> = (sent - EVENT_BUFFER..sent).map(|n| n.to_string()).collect();
        assert_eq!(received, newest);
        hub.send(published(sent));
        assert!(matches!(
            client.next().await,
            Some(Item::Event(LiveEvent::Published { event_id, .. })) if event_id == sent.to_string()
        ));
    }
}
