//! Benchmarks (placeholder until the QUIC vs TCP benchmark lands).
fn main() {}
