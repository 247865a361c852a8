// vhost-user messages: the header and payload parsers over arbitrary
// bytes and descriptor counts, then whole conversations with the protocol
// state machine ([`Backend`]): the input is a sequence of messages, each
// with the descriptors its control byte asks for (memfds, which the
// backend may map as guest memory, or sockets standing in for eventfds).
//
// Shared by the fuzz target (fuzz/fuzz_targets/vhost_msg.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use std::os::fd::OwnedFd;
use std::sync::Arc;

use fvs_ports::vhost::backend::Backend;
use fvs_ports::vhost::device::Shared;
use fvs_ports::vhost::memory::memfd;
use fvs_ports::vhost::msg::{self, Header, Request, HDR_SIZE, MAX_FDS, MAX_REGIONS};

/// A descriptor for kick/call/err messages (a socket stands in for an
/// eventfd: the backend only keeps it, or writes to it).
fn notify_fd() -> OwnedFd {
    std::os::unix::net::UnixStream::pair()
        .expect("socketpair")
        .0
        .into()
}

/// Runs one input; panics on a finding.
pub fn check(data: &[u8]) {
    let shared = Arc::new(Shared::new("fuzz"));
    let mut backend = Backend::new(shared);
    let mut d = data;
    // Each message: control byte (fd count and kind), header, payload of
    // the header's size (or what is left).
    for _ in 0..16 {
        let Some((&ctl, rest)) = d.split_first() else {
            break;
        };
        let Some((h, rest)) = rest.split_first_chunk::<HDR_SIZE>() else {
            break;
        };
        let n_fds = usize::from(ctl & 0x0f).min(MAX_FDS);
        let hdr = match Header::parse(h) {
            Ok(hdr) => hdr,
            Err(_) => {
                // The connection ends here, as conn.rs does.
                let _ = msg::parse(
                    &Header {
                        request: 0,
                        flags: 0,
                        size: 0,
                    },
                    rest,
                    n_fds,
                );
                break;
            }
        };
        assert_eq!(Header::parse(&hdr.encode()), Ok(hdr));
        let size = (hdr.size as usize).min(rest.len());
        let (payload, rest) = rest.split_at(size);
        d = rest;
        if let Ok(Request::SetMemTable(r)) = msg::parse(&hdr, payload, n_fds) {
            assert!(!r.is_empty() && r.len() <= MAX_REGIONS && r.len() <= n_fds);
        }
        let fds: Vec<OwnedFd> = (0..n_fds)
            .map(|_| {
                if ctl & 0x80 != 0 {
                    notify_fd()
                } else {
                    memfd("fuzz", 1 << 16).expect("memfd")
                }
            })
            .collect();
        let (reply, _) = backend.handle(&hdr, payload, fds);
        if let Some(r) = reply {
            let b = r.as_bytes();
            let rh =
                Header::parse(b[..HDR_SIZE].try_into().expect("header")).expect("our reply parses");
            assert_eq!(rh.request, hdr.request);
            assert_eq!(rh.size as usize, b.len() - HDR_SIZE);
        }
    }
}
