//! The gate's second MQTT connection: it holds the retained `config` topic (where the
//! platform publishes the signed snapshot) and tells the gate whether the broker is
//! reachable at all. [`kippu_mqtt::GateClient`] has neither a config subscription nor
//! a connection state, and is left as it is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kippu_domain::snapshot::MAX_SNAPSHOT_BYTES;
use kippu_domain::topics::GatePath;
use kippu_mqtt::MqttUrl;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::task::JoinHandle;

/// Pause between reconnection attempts of the config link.
const RETRY: Duration = Duration::from_millis(300);

/// What the link reports to the gate.
pub(crate) trait LinkEvents: Send + Sync + 'static {
    /// The broker acknowledged the config subscription (after every (re)connect).
    fn connected(&self);
    /// A config payload arrived (retained on subscribe, or live).
    fn config(&self, payload: &[u8]);
}

/// A running config link.
pub(crate) struct ConfigLink {
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl ConfigLink {
    /// Connects in the background; `up` says whether the broker is reachable.
    pub(crate) fn start(url: &MqttUrl, gate: &GatePath, up: Arc<AtomicBool>, events: Arc<dyn LinkEvents>) -> Self {
        let client_id =
            format!("kippu-gatecfg-{}-{}-{}-{:08x}", gate.operator, gate.station, gate.gate, rand::random::<u32>());
        let mut options = url.options(&client_id);
        // A snapshot is bigger than a scan; the broker bounds what it relays anyway.
        options.set_max_packet_size(MAX_SNAPSHOT_BYTES + 1024, 64 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let topic = gate.topic("config");
        let task = {
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            // `try_`: awaiting the request channel from the task draining it could deadlock.
                            if let Err(e) = client.try_subscribe(&topic, QoS::AtLeastOnce) {
                                tracing::warn!(error = %e, "could not queue config subscription");
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            up.store(true, Ordering::SeqCst);
                            events.connected();
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => {
                            if !p.payload.is_empty() {
                                events.config(&p.payload);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if up.swap(false, Ordering::SeqCst) {
                                tracing::warn!(error = %e, "gate lost the broker; deciding offline until it is back");
                            }
                            tokio::time::sleep(RETRY).await;
                        }
                    }
                }
            })
        };
        Self { client, task }
    }

    pub(crate) async fn stop(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(500), self.client.disconnect()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for ConfigLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes a signed snapshot as the retained `config` of `gate` (what the platform
/// does; for tests, demos and the `publish-config` CLI). `payload` is sent as is, so
/// tests can publish rogue or broken configs too.
pub async fn publish_config(url: &MqttUrl, gate: &GatePath, payload: &[u8]) -> Result<(), kippu_mqtt::MqttError> {
    let client_id = format!("kippu-cfgpub-{:08x}", rand::random::<u32>());
    let (client, mut eventloop) = AsyncClient::new(url.options(&client_id), 8);
    client.publish(gate.topic("config"), QoS::AtLeastOnce, true, payload.to_vec()).await?;
    let acked = tokio::time::timeout(kippu_mqtt::CONNECT_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    let result = match acked {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(kippu_mqtt::MqttError::Connect { url: url.to_string(), reason }),
        Err(_) => Err(kippu_mqtt::MqttError::Connect { url: url.to_string(), reason: "timed out".into() }),
    };
    if result.is_ok() {
        let _ = client.disconnect().await;
        // Drive the DISCONNECT out.
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    }
    result
}
