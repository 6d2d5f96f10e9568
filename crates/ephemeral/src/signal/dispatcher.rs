//! Pattern-routed async signal handlers (being written).
