//! Signal benchmarks (being written).
fn main() {}
