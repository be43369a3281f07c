//! The contract's "Connections" on real sockets: deadlines at non-default values with
//! their lower and upper bounds (HTTP/1 and h2c), HTTP/2 floods against a real HTTP/2
//! client, clients that stop reading, and the connection cap. Every wait is for an event,
//! with a deadline; bounds on when a connection closes are the contract's, not speed.

mod capacity;
mod deadlines;
mod http2;
mod process;
mod raw;
mod slow_readers;
