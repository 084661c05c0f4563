//! A simulated gate. It does what the device does: take a camera frame (a PNG
//! here), find and decode the QR code in it, ask a validator over MQTT, and
//! open or stay shut on the verdict.

use std::time::Duration;

use kippu_domain::topics::GatePath;
use kippu_domain::{DenyReason, TripRef, VerdictMessage};
use kippu_mqtt::{GateClient, MqttUrl};

/// Gate errors (not denials: a denial is a normal verdict).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The broker could not be reached.
    #[error("mqtt: {0}")]
    Mqtt(#[from] kippu_mqtt::MqttError),
    /// A gate path that is not `operator/station/gate`.
    #[error("bad gate path {0:?}")]
    BadPath(String),
}

/// Why an image gave no QR text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Not a decodable image.
    #[error("not an image: {0}")]
    NotAnImage(String),
    /// No QR code found.
    #[error("no QR code in the image")]
    NoCode,
    /// A QR code was found but its data could not be decoded.
    #[error("QR code damaged: {0}")]
    Damaged(String),
}

/// Finds and decodes the first QR code in a PNG (or any format `image` reads).
pub fn read_qr(image_bytes: &[u8]) -> Result<String, ReadError> {
    let img = image::load_from_memory(image_bytes).map_err(|e| ReadError::NotAnImage(e.to_string()))?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    let grid = grids.first().ok_or(ReadError::NoCode)?;
    let (_, text) = grid.decode().map_err(|e| ReadError::Damaged(e.to_string()))?;
    Ok(text)
}

/// A gate connected to its broker.
pub struct SimGate {
    client: GateClient,
    timeout: Duration,
    /// For an on-board validator: the run its vehicle is working, as the vehicle's AVL unit says.
    run: std::sync::Mutex<Option<TripRef>>,
}

impl SimGate {
    /// Connects the gate `operator/station/gate` to the broker at `mqtt_url`.
    pub async fn connect(mqtt_url: &str, gate_key: &str) -> Result<Self, GateError> {
        let mut parts = gate_key.split('/');
        let path = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(o), Some(s), Some(g), None) => GatePath::new(o, s, g),
            _ => None,
        }
        .ok_or_else(|| GateError::BadPath(gate_key.into()))?;
        let url = MqttUrl::parse(mqtt_url)?;
        Ok(Self {
            client: GateClient::connect(&url, path).await?,
            timeout: Duration::from_secs(3),
            run: std::sync::Mutex::new(None),
        })
    }

    /// The gate's path.
    pub fn path(&self) -> &GatePath {
        self.client.gate()
    }

    /// Presents a camera frame: an unreadable image is denied on the gate
    /// itself, without bothering the validator.
    pub async fn present_image(&self, image_bytes: &[u8]) -> Result<VerdictMessage, GateError> {
        match read_qr(image_bytes) {
            Ok(text) => self.present_text(&text).await,
            Err(e) => {
                tracing::info!(gate = %self.path().key(), error = %e, "unreadable frame");
                Ok(VerdictMessage::deny("", DenyReason::UnreadableQr, None))
            }
        }
    }

    /// Presents already-decoded QR text.
    pub async fn present_text(&self, text: &str) -> Result<VerdictMessage, GateError> {
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(self.client.scan_on_run(text, run.as_ref(), self.timeout).await?)
    }

    /// Sets the run the gate's vehicle works (`None` for a stop gate, or between runs);
    /// every scan from then on names it, so delay insurance knows who rode it.
    pub fn set_run(&self, run: Option<TripRef>) {
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = run;
    }

    /// Disconnects (the broker then publishes the gate's `offline` will only on an unclean drop).
    pub async fn disconnect(self) {
        self.client.disconnect().await;
    }
}

/// One line a person reads on the gate display.
pub fn display(v: &VerdictMessage) -> String {
    if v.open {
        match (v.ticket, v.rides_left) {
            (Some(t), Some(r)) => format!("OPEN  ticket #{t}, {r} rides left"),
            (Some(t), None) => format!("OPEN  ticket #{t}"),
            _ => "OPEN".into(),
        }
    } else {
        let r = v.reason.unwrap_or(DenyReason::MalformedScan);
        format!("DENY  {} ({})", r.code(), r.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(text: &str) -> Vec<u8> {
        let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
        let img = code.render::<image::Luma<u8>>().min_dimensions(200, 200).build();
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn reads_what_qrcode_wrote() {
        let text = "KP1.AQAAAAAAAAAHAAAAAQ";
        assert_eq!(read_qr(&png_of(text)).unwrap(), text);
    }

    #[test]
    fn bad_frames() {
        assert!(matches!(read_qr(b"not a png"), Err(ReadError::NotAnImage(_))));
        let blank = image::GrayImage::from_pixel(100, 100, image::Luma([255u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        blank.write_to(&mut out, image::ImageFormat::Png).unwrap();
        assert_eq!(read_qr(&out.into_inner()), Err(ReadError::NoCode));
    }

    #[test]
    fn display_lines() {
        assert_eq!(display(&VerdictMessage::open("a", 5, Some(2))), "OPEN  ticket #5, 2 rides left");
        assert_eq!(display(&VerdictMessage::deny("a", DenyReason::Expired, None)), "DENY  EXPIRED (ticket expired)");
    }
}
