//! The gate load bench (being written).
fn main() {}
