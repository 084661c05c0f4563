//! Row types of the store. They are plain records of kippu-domain (`kippu_domain::model`), so
//! callers can name them without this crate; re-exported here under their old paths.

pub use kippu_domain::model::{
    Bundle, GateRow, Operator, OperatorReport, Payment, PolicyRow, Product, TapRow, TicketRow, Traveler, VoucherRow,
};
