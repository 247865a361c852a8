//! Harness for the kernel-facing driver tests: network namespaces and veth
//! pairs that clean up after themselves, a plain AF_PACKET socket to play
//! the peer (independent of the driver under test), frame builders, and
//! helpers that drive queues the way a PMD thread does.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fvs_datapath::csum::checksum;
use fvs_datapath::netdev::{RxQueue, TxQueue};
use fvs_datapath::packet::{Batch, PacketPool};

/// Whether the tests can create namespaces, veth pairs and TAP devices.
/// Under `CI=true` a missing capability fails the test; elsewhere the test
/// prints why it is skipped and returns.
pub fn privileged() -> bool {
    static WHY_NOT: OnceLock<Option<String>> = OnceLock::new();
    let why = WHY_NOT.get_or_init(|| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not running as root".into());
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Some("no /dev/net/tun".into());
        }
        let probe = unique("p");
        if !ip_ok(&format!("netns add {probe}")) {
            return Some("cannot create network namespaces".into());
        }
        let veth = ip_ok(&format!(
            "-n {probe} link add {probe}a type veth peer name {probe}b"
        ));
        ip_ok(&format!("netns del {probe}"));
        (!veth).then(|| "cannot create veth pairs".into())
    });
    match why {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{why}: the port driver tests need root, network namespaces and veth")
        }
        Some(why) => {
            // Straight to stderr: the test harness would swallow eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {why} (the port driver tests need root, network namespaces and veth)"
            );
            false
        }
    }
}

/// A name unique to this process and call, short enough for an interface.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "fv{tag}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn ip_ok(args: &str) -> bool {
    Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `ip ARGS`, failing the test with ip's message if it fails.
pub fn ip(args: &str) -> String {
    let o = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        o.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new() -> Netns {
        let name = unique("n");
        ip(&format!("netns add {name}"));
        let ns = Netns(name);
        ip(&format!("-n {} link set lo up", ns.0));
        ns
    }

    /// Runs `f` on a thread inside the namespace: sockets and devices it
    /// creates belong to the namespace and stay there wherever used.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let file = File::open(&path).expect("open namespace");
                // SAFETY: setns changes only this thread's network namespace,
                // to one the file refers to.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            });
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// The MAC address of interface `ifname` in the namespace.
    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let out = ip(&format!("-n {} -o link show {ifname}", self.0));
        parse_mac_after(&out, "link/ether ")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip_ok(&format!("netns del {}", self.0));
    }
}

/// A link in the root namespace, deleted on drop (with its veth peer).
pub struct Link(pub String);

impl Drop for Link {
    fn drop(&mut self) {
        ip_ok(&format!("link del {}", self.0));
    }
}

/// A veth pair: `host` in the root namespace (for the port under test),
/// `peer` in namespace `ns` with address `ip`/24. Neither end makes IPv6
/// link-local addresses, so the kernel sends little unasked traffic.
pub struct Veth {
    pub host: String,
    pub peer: String,
    // Declared before `ns`: the link goes first, then the namespace.
    link: Link,
    pub ns: Netns,
}

impl Veth {
    pub fn new(ip_addr: &str) -> Veth {
        let ns = Netns::new();
        let host = unique("h");
        let peer = unique("q");
        ip(&format!(
            "link add {host} type veth peer name {peer} netns {}",
            ns.0
        ));
        let link = Link(host.clone());
        ip(&format!("link set {host} addrgenmode none"));
        ip(&format!("-n {} link set {peer} addrgenmode none", ns.0));
        ip(&format!("-n {} addr add {ip_addr}/24 dev {peer}", ns.0));
        ip(&format!("-n {} link set {peer} up", ns.0));
        ip(&format!("link set {host} up"));
        Veth {
            host,
            peer,
            link,
            ns,
        }
    }

    pub fn peer_mac(&self) -> [u8; 6] {
        self.ns.mac(&self.peer)
    }
}

pub fn sysfs(ifname: &str, attr: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/{attr}"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn sysfs_mac(ifname: &str) -> [u8; 6] {
    parse_mac_after(&sysfs(ifname, "address"), "")
}

fn parse_mac_after(text: &str, key: &str) -> [u8; 6] {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {text:?}"))
        + key.len();
    let mut mac = [0; 6];
    for (b, p) in mac.iter_mut().zip(text[at..].split(':')) {
        *b = u8::from_str_radix(&p[..2], 16).unwrap();
    }
    mac
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A receive queue polled as a PMD would, remembering every frame.
pub struct Rx {
    pub q: Box<dyn RxQueue>,
    pub seen: Vec<Vec<u8>>,
}

impl Rx {
    pub fn new(q: Box<dyn RxQueue>) -> Rx {
        Rx {
            q,
            seen: Vec::new(),
        }
    }

    /// One poll; returns the frames received.
    pub fn poll(&mut self) -> Vec<Vec<u8>> {
        let mut b = Batch::new();
        self.q.recv(&mut b);
        let got: Vec<Vec<u8>> = b.packets().iter().map(|p| p.data().to_vec()).collect();
        self.seen.extend(got.iter().cloned());
        got
    }

    /// Polls until a frame matching `pred` arrives (returned) or `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(f) = self.poll().into_iter().find(|f| pred(f)) {
                return Some(f);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }

    /// Polls for `d`, returning every frame matching `pred`.
    pub fn collect_for(
        &mut self,
        d: Duration,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        while Instant::now() < end {
            out.extend(self.poll().into_iter().filter(|f| pred(f)));
            std::thread::sleep(Duration::from_millis(1));
        }
        out
    }

    pub fn seen_bytes(&self) -> u64 {
        self.seen.iter().map(|f| f.len() as u64).sum()
    }
}

/// Sends `frames` as one batch.
pub fn send(txq: &mut dyn TxQueue, pool: &PacketPool, frames: &[Vec<u8>]) {
    let mut b = Batch::new();
    for f in frames {
        b.push(pool.packet_from(f).expect("pool buffer")).unwrap();
    }
    txq.send(&mut b);
    assert!(b.is_empty());
}

/// A plain AF_PACKET socket on one interface, to play the peer.
pub struct RawSock(OwnedFd);

impl RawSock {
    /// Binds to `ifname` in the calling thread's namespace.
    pub fn bind(ifname: &str) -> RawSock {
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain syscall; the descriptor is checked and then owned.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: `name` is a NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex != 0, "no interface {ifname}");
        // SAFETY: sockaddr_ll is plain data; zeroes are valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid address of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        RawSock(fd)
    }

    pub fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is valid for reads of its length.
        let r = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            r,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next incoming (not outgoing) frame, if one is queued.
    pub fn try_recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: sockaddr_ll is plain data; zeroes are valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf`, `sll` and `len` are valid for writes of their sizes.
            let n = unsafe {
                libc::recvfrom(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                return None;
            }
            if sll.sll_pkttype != libc::PACKET_OUTGOING {
                return Some(buf[..n as usize].to_vec());
            }
        }
    }

    /// Frames matching `pred` received within `d`.
    pub fn collect_for(&self, d: Duration, mut pred: impl FnMut(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        while Instant::now() < end {
            match self.try_recv() {
                Some(f) if pred(&f) => out.push(f),
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        out
    }
}

pub const TEST_ETHERTYPE: u16 = 0x88b5; // IEEE local experimental

/// An Ethernet frame of `len` bytes with the local experimental
/// ethertype, carrying `tag` and then a pattern.
pub fn test_frame(dst: [u8; 6], src: [u8; 6], tag: &[u8], len: usize) -> Vec<u8> {
    let mut f = eth(dst, src, TEST_ETHERTYPE, tag);
    f.extend((f.len()..len).map(|i| i as u8));
    f
}

pub fn has_tag(f: &[u8], tag: &[u8]) -> bool {
    f.len() >= 14 + tag.len()
        && f[12..14] == TEST_ETHERTYPE.to_be_bytes()
        && f[14..].starts_with(tag)
}

pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn arp_request(src_mac: [u8; 6], src_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&src_mac);
    a.extend_from_slice(&src_ip);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target_ip);
    eth([0xff; 6], src_mac, 0x0806, &a)
}

/// The ARP reply for `ip` addressed to `mac`: returns the sender's MAC.
pub fn arp_reply_from(f: &[u8], ip: [u8; 4], mac: [u8; 6]) -> Option<[u8; 6]> {
    let ok = f.len() >= 42
        && f[12..14] == [8, 6]
        && f[20..22] == [0, 2]
        && f[28..32] == ip
        && f[32..38] == mac;
    ok.then(|| f[22..28].try_into().unwrap())
}

pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

pub fn icmp_echo(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// Whether `f` is an ICMP echo reply from `src` with `id`/`seq`; returns its data.
pub fn echo_reply_data(f: &[u8], src: [u8; 4], id: u16, seq: u16) -> Option<Vec<u8>> {
    let ok = f.len() >= 42
        && f[12..14] == [8, 0]
        && f[23] == 1
        && f[26..30] == src
        && f[34] == 0
        && f[38..40] == id.to_be_bytes()
        && f[40..42] == seq.to_be_bytes();
    (ok && checksum(&f[14..34]) == 0 && checksum(&f[34..]) == 0).then(|| f[42..].to_vec())
}

/// Counts the packet sockets bound to interface `ifindex` (/proc/net/packet).
pub fn packet_sockets_on(ifindex: u32) -> usize {
    let t = std::fs::read_to_string("/proc/net/packet").unwrap();
    t.lines()
        .skip(1)
        .filter(|l| {
            l.split_whitespace()
                .nth(4)
                .and_then(|i| i.parse::<u32>().ok())
                == Some(ifindex)
        })
        .count()
}

pub fn ifindex(ifname: &str) -> u32 {
    sysfs(ifname, "ifindex").parse().unwrap()
}

pub fn if_flags(ifname: &str) -> u32 {
    u32::from_str_radix(sysfs(ifname, "flags").trim_start_matches("0x"), 16).unwrap()
}
