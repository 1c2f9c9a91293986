//! `GET /api/live`: server-sent events. A `snapshot` event every 500 ms (aggregates only)
//! and discrete events as they happen: `breaker`, `published` samples and, for requests that
//! carry the admin token, `dlq`. Keep-alive comments every 15 s. A slow client only ever
//! gets the newest snapshot and skips discrete events it fell behind on; every stream ends
//! when the server starts shutting down.

use super::AppState;
use super::auth::is_admin;
use super::error::AppError;
use super::throttle::ClientAddr;
use crate::telemetry::live::{LiveEvent, Snapshot};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// One client's position in the feed.
struct Client {
    snapshots: watch::Receiver<Option<Snapshot>>,
    events: broadcast::Receiver<LiveEvent>,
    closing: CancellationToken,
    admin: bool,
}

fn sse<T: serde::Serialize>(name: &str, value: &T) -> Event {
    Event::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

impl Client {
    /// The next event to send, or `None` when the stream ends (server shutting down).
    async fn next(&mut self) -> Option<Event> {
        loop {
            tokio::select! {
                biased;
                // Shutdown began (or the server is gone).
                () = self.closing.cancelled() => return None,
                changed = self.snapshots.changed() => {
                    changed.ok()?;
                    let snapshot = self.snapshots.borrow_and_update().clone();
                    if let Some(s) = snapshot {
                        return Some(sse("snapshot", &s));
                    }
                }
                event = self.events.recv() => match event {
                    Ok(e) if e.admin_only() && !self.admin => {}
                    Ok(e) => return Some(sse(e.name(), &e)),
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
    let admin = is_admin(&headers, client, &state)?;
    let mut snapshots = state.live.snapshots();
    // The current snapshot goes out first, without waiting for the next one.
    snapshots.mark_changed();
    let client = Client {
        snapshots,
        events: state.live.subscribe(),
        closing: state.live.closing(),
        admin,
    };
    let stream = futures::stream::unfold(client, |mut client| async move {
        client.next().await.map(|event| (Ok(event), client))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
