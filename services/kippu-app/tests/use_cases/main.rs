//! kippu-app's use cases against in-memory fakes of the ports (`support`): each use case's
//! success and each of its typed errors.

mod support;

mod accounts;
mod credentials;
mod devices;
mod period;
mod purchase;
mod staff;
mod tickets;
mod timetable;
mod topup;
mod vouchers;
