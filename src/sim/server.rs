//! The simulator's HTTP/1.1 server: its own accept loop (so a fault can reset a TCP connection
//! with SO_LINGER 0), one hyper connection task per socket, and the hand-off of each request to
//! the [`World`](super::world::World). Runs on whatever tokio runtime starts it, including an
//! actix `System` (tokio current-thread + LocalSet), because it only uses `tokio::spawn`.

use super::world::{After, SimRequest, World};
use axum::body::Body;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Largest request body read (the API's bodies are tiny JSON objects).
const MAX_BODY: usize = 1 << 20;

pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, shared.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "simulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// Lets a request handler ask its connection task to reset the socket.
struct ConnControl {
    reset: Notify,
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to set SO_LINGER 0 right before the connection is dropped:
    // the last close then sends a RST instead of a FIN.
    let linger_handle = SockRef::from(&stream).try_clone().ok();
    let control = Arc::new(ConnControl {
        reset: Notify::new(),
    });
    let mut shutdown = shared.shutdown.subscribe();
    let service = {
        let control = control.clone();
        service_fn(move |req| handle(shared.clone(), control.clone(), req))
    };
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = control.reset.notified() => {
            if let Some(socket) = &linger_handle {
                let _ = socket.set_linger(Some(Duration::ZERO));
            }
        }
        _ = shutdown.changed() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    control: Arc<ConnControl>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(Body::new(body), MAX_BODY)
        .await
        .unwrap_or_default();
    let authorization = parts.headers.get(AUTHORIZATION);
    let bearer = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let request = SimRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        bearer,
        authorization_header: authorization.is_some(),
        body: &body,
    };
    let outcome = shared.world().handle(&request, std::time::Instant::now());
    match outcome.after {
        After::Respond => {}
        After::Hang(d) => tokio::time::sleep(d).await,
        After::Reset => {
            control.reset.notify_one();
            // The connection task drops this future together with the socket.
            match std::future::pending::<Infallible>().await {}
        }
    }
    let mut response = Response::new(Body::from(outcome.body));
    *response.status_mut() =
        StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(outcome.content_type));
    Ok(response)
}
