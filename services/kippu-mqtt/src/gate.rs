//! The gate's side of the protocol.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use kippu_domain::topics::GatePath;
use kippu_domain::{DenyReason, ScanRequest, VerdictMessage};
use rumqttc::{AsyncClient, Event, LastWill, Outgoing, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{MqttError, Result};
use crate::mqtt_url::MqttUrl;
use crate::{now_unix_millis, CONNECT_TIMEOUT, RECONNECT_DELAY};

/// A gate's retained `status` payload: `{"state":"online"}` / `{"state":"offline"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum GateStatus {
    /// Connected.
    Online,
    /// Disconnected, cleanly or via the last will.
    Offline,
}

impl GateStatus {
    fn payload(self) -> Vec<u8> {
        serde_json::to_vec(&self).expect("unit enum serializes")
    }
}

type Pending = Arc<StdMutex<HashMap<String, oneshot::Sender<VerdictMessage>>>>;

/// How a gate connects.
#[derive(Debug, Clone, Default)]
pub struct GateOptions {
    /// Validator keys whose signed verdicts the gate acts on. When set, an unsigned or
    /// wrongly signed verdict (a rogue publisher on the verdict topic) is ignored and
    /// counted, and the scan waits on for the real one. Empty: every verdict is believed.
    pub trusted_validators: Vec<ed25519_dalek::VerifyingKey>,
}

/// A connected gate: publishes scans and matches verdicts to them.
///
/// One background task drives the MQTT connection (reconnecting on its own);
/// [`GateClient::scan`] can be called repeatedly and concurrently.
pub struct GateClient {
    gate: GatePath,
    client: AsyncClient,
    pending: Pending,
    verdicts: broadcast::Sender<VerdictMessage>,
    closing: Arc<AtomicBool>,
    rogue: Arc<AtomicU64>,
    driver: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GateClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateClient").field("gate", &self.gate).finish_non_exhaustive()
    }
}

impl GateClient {
    /// Connects as `gate`: sets a retained `offline` last will on its status
    /// topic, publishes retained `online`, and subscribes to its verdict topic.
    /// Returns once the subscription is acknowledged, or fails after
    /// [`CONNECT_TIMEOUT`].
    pub async fn connect(url: &MqttUrl, gate: GatePath) -> Result<GateClient> {
        Self::connect_with(url, gate, GateOptions::default()).await
    }

    /// [`GateClient::connect`] with options (trusted validator keys).
    pub async fn connect_with(url: &MqttUrl, gate: GatePath, opts: GateOptions) -> Result<GateClient> {
        // Random: brokers drop the older session on a duplicate id, and the will of
        // that dropped session could overwrite our fresh `online`.
        let client_id = crate::client_id(&format!("kippu-gate-{}-{}-{}", gate.operator, gate.station, gate.gate));
        let status_topic = gate.topic("status");
        let verdict_topic = gate.topic("verdict");
        let mut options = url.options(&client_id);
        options.set_last_will(LastWill::new(&status_topic, GateStatus::Offline.payload(), QoS::AtLeastOnce, true));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        eventloop.set_network_options(crate::mqtt_url::network_options());

        let pending: Pending = Arc::default();
        let (verdicts, _) = broadcast::channel(64);
        let closing = Arc::new(AtomicBool::new(false));
        let rogue = Arc::new(AtomicU64::new(0));
        let (ready_tx, mut ready) = watch::channel(false);
        let gate_key = gate.key();
        let last_error = Arc::new(StdMutex::new(None::<String>));

        let driver = {
            let (client, pending, verdicts, closing, last_error, rogue) =
                (client.clone(), pending.clone(), verdicts.clone(), closing.clone(), last_error.clone(), rogue.clone());
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            // Queued from a separate task: awaiting the request channel
                            // here, in the task that drains it, could deadlock. Status first,
                            // so that once the SubAck arrives the broker has the status too.
                            let (client, status, verdict) =
                                (client.clone(), status_topic.clone(), verdict_topic.clone());
                            tokio::spawn(async move {
                                let online =
                                    client.publish(status, QoS::AtLeastOnce, true, GateStatus::Online.payload());
                                if let Err(e) = online.await {
                                    tracing::warn!(error = %e, "could not queue online status");
                                }
                                if let Err(e) = client.subscribe(verdict, QoS::AtLeastOnce).await {
                                    tracing::warn!(error = %e, "could not queue verdict subscription");
                                }
                            });
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            ready_tx.send_replace(true);
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if p.topic == verdict_topic => {
                            match serde_json::from_slice::<VerdictMessage>(&p.payload) {
                                Ok(v)
                                    if !opts.trusted_validators.is_empty()
                                        && !v.verify(&opts.trusted_validators, &gate_key) =>
                                {
                                    rogue.fetch_add(1, Ordering::Relaxed);
                                    tracing::warn!(id = %v.id, "verdict not signed by a trusted validator ignored");
                                }
                                Ok(v) => {
                                    let waiter = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&v.id);
                                    if let Some(tx) = waiter {
                                        let _ = tx.send(v.clone());
                                    }
                                    // No receivers is normal; the broadcast is only for watchers.
                                    let _ = verdicts.send(v);
                                }
                                Err(e) => tracing::warn!(error = %e, "unreadable verdict ignored"),
                            }
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                        Ok(_) => {}
                        Err(e) => {
                            if closing.load(Ordering::Relaxed) {
                                return;
                            }
                            tracing::warn!(error = %e, "gate MQTT connection lost, reconnecting");
                            *last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                            tokio::time::sleep(RECONNECT_DELAY).await;
                        }
                    }
                }
            })
        };

        let me = GateClient { gate, client, pending, verdicts, closing, rogue, driver: Some(driver) };
        let ready = matches!(tokio::time::timeout(CONNECT_TIMEOUT, ready.wait_for(|r| *r)).await, Ok(Ok(_)));
        if ready {
            return Ok(me);
        }
        // `me` drops here, which aborts the driver.
        let reason = last_error.lock().unwrap_or_else(|e| e.into_inner()).take();
        Err(MqttError::Connect { url: url.to_string(), reason: reason.unwrap_or_else(|| "timed out".into()) })
    }

    /// This client's gate.
    pub fn gate(&self) -> &GatePath {
        &self.gate
    }

    /// Verdicts ignored because no trusted validator signed them.
    pub fn rogue_verdicts(&self) -> u64 {
        self.rogue.load(Ordering::Relaxed)
    }

    /// Presents `pass_text` and waits up to `timeout` for the verdict.
    ///
    /// A missing verdict is not an error: the gate stays shut with
    /// [`DenyReason::Timeout`], which is what the passenger should see.
    pub async fn scan(&self, pass_text: &str, timeout: Duration) -> Result<VerdictMessage> {
        self.scan_on_run(pass_text, None, timeout).await
    }

    /// As [`GateClient::scan`], from an on-board validator whose vehicle works `trip`.
    pub async fn scan_on_run(
        &self,
        pass_text: &str,
        trip: Option<&kippu_domain::TripRef>,
        timeout: Duration,
    ) -> Result<VerdictMessage> {
        let id = format!("{:016x}", rand::random::<u64>());
        let req = ScanRequest {
            v: kippu_domain::verdict::PROTOCOL_VERSION,
            id: id.clone(),
            pass: pass_text.to_owned(),
            ts: now_unix_millis(),
            trip: trip.cloned(),
        };
        let payload = serde_json::to_vec(&req)?;
        let (tx, rx) = oneshot::channel();
        // Registered before publishing: a fast validator may answer before `publish` returns.
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), tx);
        let outcome = tokio::time::timeout(timeout, async {
            self.client.publish(self.gate.topic("scan"), QoS::AtLeastOnce, false, payload).await?;
            rx.await.map_err(|_| MqttError::Closed)
        })
        .await;
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        match outcome {
            Ok(result) => result,
            Err(_elapsed) => Ok(VerdictMessage::deny(&id, DenyReason::Timeout, None)),
        }
    }

    /// Every verdict arriving on this gate's topic, including ones no
    /// [`Self::scan`] waits for (e.g. the empty-id answer to an unreadable scan).
    pub fn subscribe_verdicts(&self) -> broadcast::Receiver<VerdictMessage> {
        self.verdicts.subscribe()
    }

    /// Publishes arbitrary bytes on this gate's scan topic (QoS 1), bypassing
    /// the scan format; for firmware simulators and tests of bad input.
    pub async fn publish_raw_scan(&self, payload: Vec<u8>) -> Result<()> {
        Ok(self.client.publish(self.gate.topic("scan"), QoS::AtLeastOnce, false, payload).await?)
    }

    /// Marks the gate offline (a clean disconnect does not fire the last will)
    /// and closes the connection.
    pub async fn disconnect(mut self) {
        self.closing.store(true, Ordering::Relaxed);
        let status =
            self.client.publish(self.gate.topic("status"), QoS::AtLeastOnce, true, GateStatus::Offline.payload());
        let bye = async {
            status.await?;
            self.client.disconnect().await
        };
        if let Err(e) = bye.await {
            tracing::warn!(error = %e, "gate disconnect could not be queued");
        }
        if let Some(mut driver) = self.driver.take() {
            // The driver ends once DISCONNECT is written; don't hang on a dead broker.
            if tokio::time::timeout(Duration::from_secs(2), &mut driver).await.is_err() {
                driver.abort();
            }
        }
    }
}

impl Drop for GateClient {
    fn drop(&mut self) {
        // Without this the driver would reconnect forever for a gate nobody uses.
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }
}
