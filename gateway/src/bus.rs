//! Room and broadcast events, in-process or across nodes over Redis pub/sub, behind one trait.
//!
//! Subscribers always read from a local `tokio::sync::broadcast` channel per topic. The in-process bus
//! publishes straight into it; the Redis bus publishes to Redis and a single pattern subscription per node
//! feeds the local channels, so every node (this one included) sees each event exactly once.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Capacity of each topic's local channel; a subscriber that falls further behind sees `Lagged`.
const TOPIC_CAPACITY: usize = 256;

/// One event as the studio's WebSocket carries it: `{"event": "...", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event: String,
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(event: impl Into<String>, data: serde_json::Value) -> Self {
        Self { event: event.into(), data }
    }
}

/// Topic names, kept in one place so publishers and subscribers agree.
pub mod topic {
    use uuid::Uuid;
    /// Everything that happens in one broadcast's room.
    pub fn broadcast(id: Uuid) -> String {
        format!("broadcast:{id}")
    }
    /// Session-level events (revocation closes the socket).
    pub fn session(id: Uuid) -> String {
        format!("session:{id}")
    }
    /// Orders for one node of the cluster (a host on another node moderating someone in this node's studio).
    pub fn node(id: &str) -> String {
        format!("node:{id}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis refused or dropped the publish.
    #[error("bus: redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The event could not be encoded.
    #[error("bus: encode: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Publish/subscribe by topic.
pub trait Bus: Send + Sync + 'static {
    /// Deliver `event` to every subscriber of `topic` on every node.
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> futures::future::BoxFuture<'a, Result<(), BusError>>;
    /// Receive the events published to `topic` from now on.
    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Arc<Event>>;
}

/// The local fan-out both buses share.
#[derive(Default)]
struct Topics {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<Event>>>>,
}

impl Topics {
    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Arc<Event>> {
        let mut channels = self.channels.lock();
        // Drop channels nobody listens to any more, so topics of finished rooms don't accumulate.
        channels.retain(|_, tx| tx.receiver_count() > 0);
        channels.entry(topic.to_owned()).or_insert_with(|| broadcast::channel(TOPIC_CAPACITY).0).subscribe()
    }

    fn deliver(&self, topic: &str, event: Arc<Event>) {
        if let Some(tx) = self.channels.lock().get(topic) {
            // An error only means there is no receiver right now, which is fine for a bus.
            let _ = tx.send(event);
        }
    }
}

/// Single-node bus: events never leave the process.
#[derive(Default)]
pub struct InProcessBus {
    topics: Topics,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Bus for InProcessBus {
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> futures::future::BoxFuture<'a, Result<(), BusError>> {
        self.topics.deliver(topic, Arc::new(event));
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Arc<Event>> {
        self.topics.subscribe(topic)
    }
}

/// Multi-node bus over Redis pub/sub. Channel names are `<prefix><topic>`, so several deployments (or
/// tests) can share one Redis.
pub struct RedisBus {
    prefix: String,
    conn: redis::aio::ConnectionManager,
    topics: Arc<Topics>,
    listener: tokio::task::JoinHandle<()>,
}

impl RedisBus {
    /// Connects, subscribes to `<prefix>*` and starts the task that feeds local subscribers. Fails if Redis
    /// cannot be reached now; later outages are retried in the background.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client.clone()).await?;
        let topics = Arc::new(Topics::default());
        let mut pubsub = client.get_async_pubsub().await?;
        let pattern = format!("{prefix}*");
        pubsub.psubscribe(&pattern).await?;
        let listener = tokio::spawn(listen(client, pubsub, pattern, prefix.to_owned(), topics.clone()));
        Ok(Self { prefix: prefix.to_owned(), conn, topics, listener })
    }
}

async fn listen(
    client: redis::Client,
    mut pubsub: redis::aio::PubSub,
    pattern: String,
    prefix: String,
    topics: Arc<Topics>,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let channel = msg.get_channel_name();
                let Some(topic) = channel.strip_prefix(&prefix) else { continue };
                let payload: Vec<u8> = match msg.get_payload() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(%topic, error = %e, "bus: unreadable redis payload");
                        continue;
                    }
                };
                match serde_json::from_slice::<Event>(&payload) {
                    Ok(event) => topics.deliver(topic, Arc::new(event)),
                    Err(e) => tracing::warn!(%topic, error = %e, "bus: undecodable event"),
                }
            }
        }
        tracing::warn!("bus: redis subscription lost; reconnecting");
        pubsub = loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            match client.get_async_pubsub().await {
                Ok(mut p) => match p.psubscribe(&pattern).await {
                    Ok(()) => break p,
                    Err(e) => tracing::warn!(error = %e, "bus: redis resubscribe failed"),
                },
                Err(e) => tracing::warn!(error = %e, "bus: redis reconnect failed"),
            }
        };
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Bus for RedisBus {
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> futures::future::BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&event)?;
            let mut conn = self.conn.clone();
            redis::cmd("PUBLISH")
                .arg(format!("{}{}", self.prefix, topic))
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        })
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Arc<Event>> {
        self.topics.subscribe(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_delivers_to_subscribers_of_the_topic_only() {
        let bus = InProcessBus::new();
        let mut a = bus.subscribe("a");
        let mut b = bus.subscribe("b");
        bus.publish("a", Event::new("x", serde_json::json!({"n": 1}))).await.unwrap();
        assert_eq!(a.recv().await.unwrap().event, "x");
        assert!(b.try_recv().is_err());
    }
}
