//! Period close on chain: the rules are kippu-app's [`kippu_app::period::close_period`] (over
//! the store, the settler's chain calls and the ledger); this module runs it with the
//! binary's adapters and keeps its callers' error: a contract's refusal (`WrongPeriod` when
//! another closer got there first) stays a [`ChainError::Rejected`] callers can match on.

use kippu_app::period::ClosePeriodError;
use kippu_app::ports::{Clock, LedgerFailure};
use kippu_app::{ChainFailure, PortError};
use kippu_chain::{Chain, ChainError};
use kippu_store::Store;

use crate::indexer::Indexer;

pub use kippu_app::period::{fit_transfers, Closed, Transfer};

/// "Now" fixed at the time the close was asked for.
struct At(i64);

impl Clock for At {
    fn now(&self) -> i64 {
        self.0
    }
}

/// Closes the current period. The ledger is caught up first, so the window ends at the
/// time of the last block it booked and every plan in it is known.
pub async fn close_period(chain: &Chain, store: &Store, indexer: &Indexer, now: i64) -> anyhow::Result<Closed> {
    kippu_app::period::close_period(chain, store, indexer, &At(now)).await.map_err(|e| match e {
        ClosePeriodError::Chain(ChainFailure::Rejected(r)) => ChainError::Rejected(r).into(),
        ClosePeriodError::Chain(ChainFailure::Unavailable(why))
        | ClosePeriodError::Store(PortError::Unavailable(why))
        | ClosePeriodError::Ledger(LedgerFailure(why)) => anyhow::anyhow!(why),
        other => anyhow::anyhow!(other.to_string()),
    })
}
