//! The chain-write outbox as the consortium's admins and auditors see it (issue 20): how many
//! writes stand where, the ones that need a person (stuck, failed, confirmed then gone from
//! the chain) and the latest. The sender (kippu-chain) does the work; this only reads.

use kippu_domain::outbox::{stuck, Policy, RecordedWrite, Stage, Write};

use crate::ports::{ChainWrites, PortResult, WriteCounts, WriteState};

/// How far back the overview counts confirmed writes (seconds): a day.
pub const CONFIRMED_WINDOW_SECS: i64 = 24 * 60 * 60;

/// Writes an overview lists at most.
pub const LISTED: i64 = 200;

/// The outbox at a glance: the counts by state and the writes asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// How many writes stand where (confirmed: in the last [`CONFIRMED_WINDOW_SECS`]).
    pub counts: WriteCounts,
    /// The writes in the state asked for, most recently changed first (at most [`LISTED`]).
    pub writes: Vec<RecordedWrite>,
}

/// The counts, and the writes in `state`, at `now`; stuck as `policy` says.
pub async fn overview(writes: &dyn ChainWrites, state: WriteState, policy: &Policy, now: i64) -> PortResult<Overview> {
    let counts = writes.write_counts(policy.stuck_after_attempts, now - CONFIRMED_WINDOW_SECS).await?;
    let writes = writes.writes_in_state(state, policy.stuck_after_attempts, LISTED).await?;
    Ok(Overview { counts, writes })
}

/// The one state a write shows as, the one that needs a person most winning: failed, then
/// gone from the chain (being sent again), then stuck, then pending; else confirmed.
pub fn state_of(w: &Write, policy: &Policy) -> WriteState {
    match w.stage {
        Stage::Failed { .. } => WriteState::Failed,
        Stage::Confirmed { .. } => WriteState::Confirmed,
        _ if w.confirmed_once => WriteState::Gone,
        _ if stuck(w, policy) => WriteState::Stuck,
        _ => WriteState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kippu_domain::outbox::{WriteKey, WriteKind};

    fn write(stage: Stage, attempts: u32, confirmed_once: bool) -> Write {
        Write { key: WriteKey { kind: WriteKind::Mint, id: "cs_1".into() }, stage, attempts, confirmed_once }
    }

    #[test]
    fn a_write_shows_as_what_needs_a_person_most() {
        let p = Policy::default();
        let sent = Stage::Sent { tx: [1; 32], at: 0 };
        assert_eq!(state_of(&write(Stage::Recorded, 0, false), &p), WriteState::Pending);
        assert_eq!(state_of(&write(sent.clone(), 1, false), &p), WriteState::Pending);
        assert_eq!(state_of(&write(sent.clone(), p.stuck_after_attempts, false), &p), WriteState::Stuck);
        assert_eq!(state_of(&write(sent, p.stuck_after_attempts, true), &p), WriteState::Gone);
        assert_eq!(state_of(&write(Stage::Confirmed { tx: [1; 32], block: 3 }, 9, true), &p), WriteState::Confirmed);
        assert_eq!(state_of(&write(Stage::Failed { reason: "x".into() }, 9, true), &p), WriteState::Failed);
    }

    #[test]
    fn states_parse_by_name_and_say_which_there_are() {
        for s in WriteState::ALL {
            assert_eq!(s.as_str().parse::<WriteState>(), Ok(s));
        }
        let e = "done".parse::<WriteState>().unwrap_err();
        assert!(e.contains("\"done\"") && e.contains("pending, stuck, failed, gone"), "{e}");
    }
}
