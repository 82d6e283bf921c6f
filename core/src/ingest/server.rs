//! The tokio shell of the RTMP ingest: a listener, one task per connection feeding a [`Session`], and the
//! limits that keep one bad client from costing anyone else: a bounded number of connections, a deadline
//! from connect to an accepted publish (slow handshakes are dropped), an idle timeout while publishing, and
//! bounded writes. Whether a key may publish, and where its media goes, is the [`IngestHandler`]'s business.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, timeout, timeout_at};

use super::session::{Event, IngestError, Session};

/// Where an accepted publisher's media goes.
pub trait PublishSink: Send {
    /// Media and configuration, in the order the encoder sent them (never [`Event::PublishRequested`]).
    fn event(&mut self, event: Event);
    /// The publisher is gone: `None` when it stopped publishing, closed the connection or was stopped through
    /// [`Accepted::stop`]; otherwise why the connection was ended (a protocol error, an unsupported codec, a
    /// timeout).
    fn ended(self: Box<Self>, error: Option<String>);
}

/// A publish the handler let through.
pub struct Accepted {
    pub sink: Box<dyn PublishSink>,
    /// Notified to end this publisher's connection (its key was revoked, or a reconnect replaces it).
    pub stop: Arc<Notify>,
}

/// The answer to a publish request: accepted, or refused with a reason the encoder shows its user.
pub type Verdict = Result<Accepted, String>;

/// Decides who may publish.
pub trait IngestHandler: Send + Sync + 'static {
    /// The client at `peer` asks to publish `key` under application `app`.
    fn publish(&self, app: String, key: String, peer: SocketAddr) -> Pin<Box<dyn Future<Output = Verdict> + Send>>;
}

/// The ingest's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; more are closed on arrival.
    pub max_connections: usize,
    /// From connect to an accepted publish (handshake, connect, the handler's verdict).
    pub setup: Duration,
    /// Silence from a publisher before its connection is dropped.
    pub idle: Duration,
    /// One write to the client.
    pub write: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            setup: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            write: Duration::from_secs(5),
        }
    }
}

/// Serves RTMP publishers on `listener` until the task is aborted.
pub fn serve(listener: TcpListener, handler: Arc<dyn IngestHandler>, limits: Limits) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("rtmp ingest: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "rtmp ingest: too many connections, closing a new one");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (handler, limits) = (handler.clone(), limits.clone());
            tokio::spawn(async move {
                connection(stream, peer, handler, &limits).await;
                drop(slot);
            });
        }
    })
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, handler: Arc<dyn IngestHandler>, limits: &Limits) {
    let mut session = Session::new();
    let mut buf = vec![0u8; 64 * 1024];
    let setup_deadline = Instant::now() + limits.setup;
    let mut publisher: Option<(Box<dyn PublishSink>, Arc<Notify>)> = None;
    let outcome: Result<(), String> = loop {
        let read = match &publisher {
            None => match timeout_at(setup_deadline, stream.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break Err("no publish within the setup time".into()),
            },
            Some((_, stop)) => {
                tokio::select! {
                    r = timeout(limits.idle, stream.read(&mut buf)) => match r {
                        Ok(r) => r,
                        Err(_) => break Err(format!("no data for {} s", limits.idle.as_secs())),
                    },
                    _ = stop.notified() => {
                        // The server's own decision (End, a revoked key, a reconnect taking over): not an error.
                        tracing::info!(%peer, "rtmp ingest: publisher ended by the server");
                        break Ok(());
                    }
                }
            }
        };
        let n = match read {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(format!("read: {e}")),
        };
        let events = match session.feed(&buf[..n]) {
            Ok(events) => events,
            Err(e) => {
                let _ = send(&mut stream, &mut session, limits).await;
                break Err(describe(&e));
            }
        };
        let mut finished = false;
        for event in events {
            match event {
                Event::PublishRequested { request, app, key } => {
                    let verdict = match timeout_at(setup_deadline, handler.publish(app, key, peer)).await {
                        Ok(v) => v,
                        Err(_) => Err("the server did not answer in time".into()),
                    };
                    match verdict {
                        Ok(accepted) => {
                            if let Err(e) = session.accept(request) {
                                accepted.sink.ended(Some(describe(&e)));
                                return;
                            }
                            publisher = Some((accepted.sink, accepted.stop));
                        }
                        Err(reason) => {
                            let _ = session.reject(request, &reason);
                            let _ = send(&mut stream, &mut session, limits).await;
                            tracing::info!(%peer, "rtmp ingest: publish refused: {reason}");
                            return;
                        }
                    }
                }
                Event::Finished => finished = true,
                other => {
                    if let Some((sink, _)) = &mut publisher {
                        sink.event(other);
                    }
                }
            }
        }
        if let Err(e) = send(&mut stream, &mut session, limits).await {
            break Err(e);
        }
        if finished {
            break Ok(());
        }
    };
    match (&outcome, publisher.is_some()) {
        (Err(e), _) => tracing::info!(%peer, "rtmp ingest: connection closed: {e}"),
        (Ok(()), true) => tracing::info!(%peer, "rtmp ingest: publisher finished"),
        (Ok(()), false) => tracing::debug!(%peer, "rtmp ingest: connection closed before publishing"),
    }
    if let Some((sink, _)) = publisher {
        sink.ended(outcome.err());
    }
}

fn describe(e: &IngestError) -> String {
    e.to_string()
}

async fn send(stream: &mut TcpStream, session: &mut Session, limits: &Limits) -> Result<(), String> {
    let out = session.take_output();
    if out.is_empty() {
        return Ok(());
    }
    match timeout(limits.write, stream.write_all(&out)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("write timed out".into()),
    }
}
