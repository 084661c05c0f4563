//! The plain records Kippu keeps: the catalogue, accounts, trips, delay cover, payments,
//! identity, reports, settlement and backups. Data, and rules that compute from their fields
//! only; loading and saving them (SQL) is kippu-store's, which re-exports them under its own
//! paths (`kippu_store::TicketRow` is [`TicketRow`]).

pub mod accounts;
pub mod backup;
pub mod catalog;
pub mod gates;
pub mod identity;
pub mod insurance;
pub mod payments;
pub mod reports;
pub mod settlement;
pub mod staff;
pub mod trips;

pub use accounts::{CardBindingRow, DeviceRow, PasskeyRow, Traveler};
pub use backup::{Dump, TableDump};
pub use catalog::{Bundle, Operator, Product, TimetableRow};
pub use gates::{CredentialRow, GateRow};
pub use identity::{IssuedCredential, IssuerRow, WalletCredential};
pub use insurance::{CoverTerms, InsuredPlan, PlanTap, PolicyRow, RouteDelays, VoucherRow, VoucherStats};
pub use payments::Payment;
pub use reports::{
    operator_account, BundleShare, ChainPos, EventFilter, EventPage, OperatorDaily, OperatorDay, OperatorEvent,
    OperatorReport, Period, RidePage, RideRow, Statement, DAY_SECS, OPERATOR_EVENT_KINDS,
};
pub use settlement::{OperatorClose, PeriodClose, PeriodCloseRow};
pub use staff::{ApiToken, Organisation, StaffAccount, StaffPasskeyRow};
pub use trips::{OpenBatch, PlanReceipt, TapRow, TicketRow};
