//! Loopback addresses for cluster tests, shared by the library's and the command line's tests
//! (included by path from each `support.rs`).

use std::net::TcpListener;

/// Two loopback addresses with free ports, comma-separated.
pub fn free_hosts() -> String {
    free_hosts_of(2)
}

/// `processes` loopback addresses with free ports, comma-separated.
pub fn free_hosts_of(processes: usize) -> String {
    let listeners: Vec<TcpListener> = (0..processes)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("an address").to_string())
        .collect::<Vec<_>>()
        .join(",")
}
