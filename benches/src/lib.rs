//! criterion benches for power-perceiver; see `benches/benches/`.
