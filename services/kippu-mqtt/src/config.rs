//! The platform's side of the gates' retained `config` topic: one persistent
//! connection that publishes each gate's signed offline snapshot.
//!
//! A connection per publish (what the gate simulator's `publish_config` does) costs a
//! CONNECT, a login check and, on Mosquitto, a PBKDF2 hash per gate every round, and
//! logs a broker error for every gate while the broker is away. Here one client keeps
//! one connection, reconnects with backoff (logging the outage once), and tells each
//! caller when the broker acknowledged its publish.
//!
//! rumqttc forgets what it had in flight when a clean session reconnects, so the
//! publisher keeps every unacknowledged publish itself and sends it again on the
//! next connection: a retained config is idempotent, and the order per gate holds.
//! Each connection gets a fresh rumqttc client and event loop (same client id), so
//! a publish queued while the old connection was failing can never be mistaken for
//! one of the new connection when packet ids and acknowledgements are matched up.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kippu_domain::topics::GatePath;
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{MqttError, Result};
use crate::mqtt_url::MqttUrl;

/// First pause after the broker went away; doubled per failed attempt up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Publishes handed to rumqttc at once; more wait in the publisher's own queue.
const WINDOW: usize = 32;

/// Publishes retained gate configs over one connection. Dropping it closes the connection.
pub struct ConfigPublisher {
    jobs: mpsc::UnboundedSender<Job>,
    ack_timeout: Duration,
    client_id: String,
    connections: Arc<AtomicU64>,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for ConfigPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigPublisher").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// One publish waiting for its PUBACK.
struct Job {
    /// Submission order, to re-send after a reconnect in the order callers asked.
    seq: u64,
    topic: String,
    payload: Bytes,
    done: oneshot::Sender<()>,
}

/// What the connection task reports to the publishing task, in order.
enum Link {
    /// Connected; publish through this client, which belongs to this connection only.
    Up(AsyncClient),
    Down,
    /// rumqttc wrote the next publish handed to it, with this packet id.
    Sent(u16),
    Acked(u16),
}

impl ConfigPublisher {
    /// Connects to `url` in the background (a fresh [`crate::client_id`] with role
    /// `kippu-config`) and keeps the connection up. Each [`Self::publish`] waits at most
    /// `ack_timeout` for the broker's acknowledgement.
    pub fn spawn(url: &MqttUrl, ack_timeout: Duration) -> Self {
        let client_id = crate::client_id("kippu-config");
        let options = url.options(&client_id);
        let (link_tx, link_rx) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicU64::new(0));
        let connection = tokio::spawn(connect_loop(options, url.to_string(), link_tx, connections.clone()));
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let publishing = tokio::spawn(publish_loop(jobs_rx, link_rx));
        Self { jobs, ack_timeout, client_id, connections, tasks: [connection, publishing] }
    }

    /// Publishes `payload` as the retained `config` of `gate` (QoS 1) and returns once the
    /// broker acknowledged it: after a reconnect if the broker is away for a moment, or
    /// [`MqttError::Unacknowledged`] after the timeout given to [`Self::spawn`] (the publish
    /// is then dropped unless already on the wire). An empty payload clears the retained config.
    ///
    /// Mosquitto also acknowledges a publish its ACL dropped, so an acknowledgement means
    /// "taken", not "delivered": publish with the validator login.
    pub async fn publish(&self, gate: &GatePath, payload: impl Into<Bytes>) -> Result<()> {
        let (done, acked) = oneshot::channel();
        let topic = gate.topic("config");
        let job = Job { seq: 0, topic: topic.clone(), payload: payload.into(), done };
        self.jobs.send(job).map_err(|_| MqttError::Closed)?;
        match tokio::time::timeout(self.ack_timeout, acked).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(MqttError::Closed),
            Err(_) => Err(MqttError::Unacknowledged(format!("config on {topic}"))),
        }
    }

    /// How many times the connection has been (re)established: 1 for a publisher that
    /// never lost its broker, however many gates it served.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The client id the publisher connects with (the same on every connection).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

impl Drop for ConfigPublisher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Keeps a connection up, one fresh rumqttc client per connection, and reports on it.
async fn connect_loop(
    options: rumqttc::MqttOptions,
    broker: String,
    link_tx: mpsc::UnboundedSender<Link>,
    connections: Arc<AtomicU64>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut outage_logged = false;
    loop {
        let (client, mut eventloop) = AsyncClient::new(options.clone(), WINDOW * 2);
        eventloop.set_network_options(crate::mqtt_url::network_options());
        let mut client = Some(client);
        loop {
            let link = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connections.fetch_add(1, Ordering::Relaxed);
                    backoff = BACKOFF_MIN;
                    if std::mem::take(&mut outage_logged) {
                        tracing::info!(%broker, "config publisher reconnected");
                    }
                    match client.take() {
                        Some(c) => Link::Up(c),
                        None => continue, // rumqttc reconnected on its own; cannot happen, we stop at errors
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Link::Sent(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => Link::Acked(ack.pkid),
                Ok(_) => continue,
                Err(e) => {
                    // Once per outage at warn level; the retries are only debug noise.
                    if !std::mem::replace(&mut outage_logged, true) {
                        tracing::warn!(%broker, error = %e, "config publisher lost the broker; retrying");
                    } else {
                        tracing::debug!(%broker, error = %e, "config publisher still cannot connect");
                    }
                    if link_tx.send(Link::Down).is_err() {
                        return;
                    }
                    break;
                }
            };
            if link_tx.send(link).is_err() {
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Feeds jobs to the current connection's client and matches PUBACKs to them.
async fn publish_loop(mut jobs_rx: mpsc::UnboundedReceiver<Job>, mut link_rx: mpsc::UnboundedReceiver<Link>) {
    let mut next_seq = 0u64;
    let mut client: Option<AsyncClient> = None;
    // Not yet handed to a connection.
    let mut queued: VecDeque<Job> = VecDeque::new();
    // Handed to the current connection's client, in order, not yet written (no packet id yet).
    let mut handed: VecDeque<Job> = VecDeque::new();
    let mut on_wire: HashMap<u16, Job> = HashMap::new();
    loop {
        tokio::select! {
            job = jobs_rx.recv() => {
                let Some(mut job) = job else { return };
                job.seq = next_seq;
                next_seq += 1;
                queued.push_back(job);
            }
            link = link_rx.recv() => match link {
                None => return,
                Some(Link::Up(c)) => client = Some(c),
                Some(Link::Down) => {
                    client = None;
                    // The connection took whatever was unacknowledged with it: queue it again, in order.
                    let mut again: Vec<Job> = handed.drain(..).chain(on_wire.drain().map(|(_, j)| j)).collect();
                    again.sort_by_key(|j| std::cmp::Reverse(j.seq));
                    for job in again {
                        queued.push_front(job);
                    }
                }
                Some(Link::Sent(pkid)) => {
                    if let Some(job) = handed.pop_front() {
                        on_wire.insert(pkid, job);
                    }
                }
                Some(Link::Acked(pkid)) => {
                    if let Some(job) = on_wire.remove(&pkid) {
                        // The caller may have timed out meanwhile; nothing to tell then.
                        let _ = job.done.send(());
                    }
                }
            },
        }
        let Some(c) = &client else { continue };
        while handed.len() + on_wire.len() < WINDOW {
            let Some(job) = queued.pop_front() else { break };
            if job.done.is_closed() {
                continue; // its caller gave up: do not publish a config nobody waits for
            }
            if c.publish_bytes(job.topic.clone(), QoS::AtLeastOnce, true, job.payload.clone()).await.is_err() {
                // That connection's event loop is gone; its Down is on the way.
                queued.push_front(job);
                break;
            }
            handed.push_back(job);
        }
    }
}
