//! Free local ports for the servers a test starts.

use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

/// A port nothing listens on right now, and never handed out before in this process: the
/// kernel may give a port just released here to the next caller, so two servers of
/// concurrent tests, each given a port before it binds it, could otherwise get the same.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}
