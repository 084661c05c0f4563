//! What the traveler pages show only in the demo (`kippu dev`): the seeded travelers to sign in as, the simulated gates.

use crate::views::GateButton;
use crate::views::TravelerCard;
use crate::{AppError, AppState};

/// The seeded travelers the sign-in page offers with one click, when the dev routes are on.
pub(crate) async fn demo_travelers(s: &AppState) -> Result<Vec<TravelerCard>, AppError> {
    if s.dev.is_none() {
        return Ok(vec![]);
    }
    Ok(s.store
        .travelers()
        .await?
        .into_iter()
        .filter(|t| t.sealed_key.is_some())
        .map(|t| TravelerCard { address: format!("{:#x}", t.address), name: t.display_name, did: t.did })
        .collect())
}

/// The simulated gates shown under a pass, when the dev routes are on; an on-board one
/// offers the runs its vehicle may be working.
pub(crate) async fn gate_buttons(s: &AppState) -> Result<Vec<GateButton>, AppError> {
    let Some(dev) = s.dev.as_deref() else { return Ok(vec![]) };
    Ok(s.store
        .gates()
        .await?
        .into_iter()
        .map(|g| GateButton {
            runs: if g.on_board { dev.runs_of(g.operator_id).into_iter().take(200).collect() } else { vec![] },
            key: g.gate_key,
        })
        .collect())
}
