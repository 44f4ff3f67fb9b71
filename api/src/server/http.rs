//! The HTTP accept loop. axum's own `serve` runs hyper with no timer, so a client that
//! sends its headers one byte a minute holds its connection forever (an attack run kept
//! 800 of them open); here every connection has a header-read deadline and a place
//! under the connection cap, and shutdown lets in-flight requests finish.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::connections::{Admitted, ConnectionCap};

/// Serves `app` on `listener` until `shutdown` resolves, then waits for in-flight
/// requests.
/// `header_timeout`: a request's headers arrive within it, or the connection is closed;
/// it is also how long an idle keep-alive connection waits for its next request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cap: ConnectionCap,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(header_timeout));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, mostly: wait for some to be freed.
                    tracing::warn!("HTTP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(place) = cap.admit() else {
            tokio::spawn(turn_away(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Admitted::new(stream, place));
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(io, service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Past the cap: a 503 the client can act on, without reading its request.
async fn turn_away(mut stream: TcpStream) {
    let body = "the server holds as many connections as it may; try again shortly\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
}
