//! `--nodelay` experiments: turn Nagle's algorithm off on TCP sockets that
//! rumqttc (gates, validators) and rumqttd (embedded broker) opened with it on,
//! to measure what `TCP_NODELAY` in kippu-mqtt would change without editing it.
//!
//! The sockets are found in /proc/self/fd and picked by address, so only this
//! process's own connections are touched (children set their own).

use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};

use socket2::SockRef;

/// Sets `TCP_NODELAY` on every TCP socket of this process for which
/// `pick(local, peer)` holds; returns how many were set.
pub(crate) fn force(pick: impl Fn(SocketAddr, SocketAddr) -> bool) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    let mut set = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor was open a moment ago and is a socket; it is only
        // borrowed for the calls below. The bench calls this between connecting and
        // loading, when no connection is being opened or closed, so the number cannot
        // be recycled for another file meanwhile (and a non-TCP socket just errors).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = SockRef::from(&fd);
        let (Ok(local), Ok(peer)) = (sock.local_addr(), sock.peer_addr()) else { continue };
        let (Some(local), Some(peer)) = (local.as_socket(), peer.as_socket()) else { continue };
        if pick(local, peer) && sock.set_tcp_nodelay(true).is_ok() {
            set += 1;
        }
    }
    set
}
