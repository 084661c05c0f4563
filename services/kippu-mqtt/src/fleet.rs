//! Fleet status: every gate's retained `status` (online, or offline through its
//! last will), as the broker reports it. This is what an operator's fleet page
//! shows, so a gate that lost power shows offline without any gate-side code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kippu_domain::topics::{GatePath, GATE_ROOT};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::task::JoinHandle;

use crate::gate::GateStatus;
use crate::mqtt_url::MqttUrl;
use crate::RECONNECT_DELAY;

/// Watches `kippu/v1/gates/+/+/+/status`.
#[derive(Debug)]
pub struct FleetWatcher {
    states: Arc<Mutex<HashMap<String, GateStatus>>>,
    task: JoinHandle<()>,
}

impl FleetWatcher {
    /// Connects as `client_id` and keeps the map current, reconnecting on its own.
    pub fn spawn(url: &MqttUrl, client_id: &str) -> Self {
        let (client, mut eventloop) = AsyncClient::new(url.options(client_id), 16);
        eventloop.set_network_options(crate::mqtt_url::network_options());
        let states = Arc::new(Mutex::new(HashMap::new()));
        let map = states.clone();
        let filter = format!("{GATE_ROOT}/+/+/+/status");
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Err(e) = client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                            tracing::warn!(error = %e, "fleet subscribe failed");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Some((gate, "status")) = GatePath::parse_topic(&p.topic) else { continue };
                        match serde_json::from_slice::<GateStatus>(&p.payload) {
                            Ok(s) => {
                                map.lock().expect("fleet map").insert(gate.key(), s);
                            }
                            Err(_) => tracing::warn!(topic = %p.topic, "unreadable gate status ignored"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "fleet watcher reconnecting");
                        tokio::time::sleep(RECONNECT_DELAY).await;
                    }
                }
            }
        });
        Self { states, task }
    }

    /// Last known status per gate key (`operator/station/gate`).
    pub fn snapshot(&self) -> HashMap<String, GateStatus> {
        self.states.lock().expect("fleet map").clone()
    }

    /// Waits until `key` reports `status`, up to `timeout`.
    pub async fn wait_for(&self, key: &str, status: GateStatus, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.snapshot().get(key) == Some(&status) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for FleetWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
