//! `GET /api/v1/events/stream`: server-sent events, one per committed event that matches the
//! filters (`kind`, `account`, `machine`, as for `/api/v1/events`), from `after` (a sequence
//! number; default: from now on). Each message's `id` is the event's sequence number, so a
//! browser that reconnects resumes with `Last-Event-ID` where it stopped; its `data` is
//! `{"seq": N, "event": {...}}`. The stream wakes on the store's commit notifications and reads
//! each new event once; at most [`MAX_STREAMS`] run at a time.

use super::pages::EventFilter;
use super::Dashboard;
use crate::store::{EventQuery, StoreReader};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Streams served at once; one more is answered 503.
pub const MAX_STREAMS: usize = 64;
/// Events read per query while catching up.
const BATCH: usize = 256;

pub fn routes(d: Dashboard) -> Router {
    let places = Arc::new(Semaphore::new(MAX_STREAMS));
    Router::new()
        .route(
            "/api/v1/events/stream",
            get(move |state, headers, query| stream(state, headers, query, places.clone())),
        )
        .with_state(d)
}

#[derive(Debug, Default, Deserialize)]
struct StreamQuery {
    after: Option<i64>,
    kind: Option<String>,
    account: Option<String>,
    machine: Option<u64>,
}

/// Where a stream is: the last sequence number it has looked at, events read but not yet sent.
struct Follow {
    reader: StoreReader,
    latest: watch::Receiver<i64>,
    query: EventQuery,
    cursor: i64,
    pending: VecDeque<SseEvent>,
    /// Held for as long as the stream lives.
    _place: OwnedSemaphorePermit,
}

async fn stream(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
    places: Arc<Semaphore>,
) -> Response {
    let filter = EventFilter {
        kind: q.kind,
        account: q.account,
        machine: q.machine,
        before: None,
    };
    let kinds = match filter.kinds() {
        Ok(k) => k,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Ok(place) = places.try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams ({MAX_STREAMS}); try again later"),
        )
            .into_response();
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let cursor = match resume.or(q.after) {
        Some(seq) => seq,
        None => match d.reader.max_seq().await {
            Ok(seq) => seq,
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        },
    };
    let follow = Follow {
        reader: d.reader.clone(),
        latest: d.store.subscribe(),
        query: EventQuery {
            kinds,
            account: filter.account(),
            machine: filter.machine,
            limit: BATCH,
            ..EventQuery::default()
        },
        cursor,
        pending: VecDeque::new(),
        _place: place,
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.pending.pop_front() {
                return Some((Ok::<_, Infallible>(event), f));
            }
            // Everything up to the newest committed event is read once, matching or not.
            let newest = *f.latest.borrow_and_update();
            if newest > f.cursor {
                let query = EventQuery {
                    after: Some(f.cursor),
                    before: Some(newest + 1),
                    ..f.query.clone()
                };
                match f.reader.events(query).await {
                    Ok(batch) => {
                        f.cursor = match batch.last() {
                            Some(last) if batch.len() == BATCH => last.seq,
                            _ => newest,
                        };
                        f.pending.extend(batch.into_iter().map(|q| {
                            SseEvent::default()
                                .id(q.seq.to_string())
                                .data(json!({ "seq": q.seq, "event": q.event }).to_string())
                        }));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream cannot read the outbox");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                continue;
            }
            if f.latest.changed().await.is_err() {
                return None;
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
