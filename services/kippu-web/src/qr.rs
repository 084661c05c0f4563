//! QR rendering with the `qrcode` crate. PNG, because the gate simulator reads
//! the image exactly as a camera would.

use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use image::{ImageFormat, Luma};
use kippu_domain::pass::{window_at, Pass};
use qrcode::{EcLevel, QrCode};

/// Renders any text as a QR PNG.
pub fn qr_png(text: &str) -> Result<Vec<u8>, String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| e.to_string())?;
    let img = code.render::<Luma<u8>>().min_dimensions(300, 300).quiet_zone(true).build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

/// Signs a fresh pass for `ticket_id` at `now` with the holder's key and returns its text.
pub fn sign_pass(holder: &PrivateKeySigner, ticket_id: u64, now: u64) -> Result<String, String> {
    let nonce = rand::random::<[u8; 8]>();
    let window = window_at(now);
    let sig = holder.sign_hash_sync(&Pass::digest(ticket_id, window, &nonce)).map_err(|e| e.to_string())?;
    Ok(Pass { ticket_id, window, nonce, signature: sig.as_bytes() }.encode())
}

/// A fresh pass as a QR PNG.
pub fn pass_png(holder: &PrivateKeySigner, ticket_id: u64, now: u64) -> Result<Vec<u8>, String> {
    qr_png(&sign_pass(holder, ticket_id, now)?)
}
