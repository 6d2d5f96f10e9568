//! Signals: the clock, events and sinks, ttls and removal, streams, constraints, patterns, the
//! processor and the dispatcher (one test binary, a module per topic).

mod clock;
mod constraints;
mod dispatcher;
mod pattern_prop;
mod processor;
mod removal;
mod sink;
mod stream;
mod ttl;
