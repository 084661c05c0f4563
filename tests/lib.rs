//! End-to-end tests of Kippu live in `trip.rs`; this library is empty.
