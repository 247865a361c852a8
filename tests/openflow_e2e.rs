//! OpenFlow on the wire, end to end, against real peers: the real
//! `ovs-ofctl` (OpenFlow 1.3 and 1.0) programs fvs through its management
//! socket and packets between namespaces follow those flows; os-ken's
//! `simple_switch_13` and Faucet drive fvs as TCP controllers; malformed
//! messages on a raw socket get the specified error and the daemon keeps
//! serving; the Controller table, `protocols` and `fail_mode` behave as in OVS.
//!
//! The controllers run from Python virtual environments under
//! `/var/cache/fvs-py` (run-tests.sh creates them; a test creates a missing
//! one itself). Needs root; under CI=true a missing capability fails.

mod e2e;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::{can_run, field, flow_packets, serial, sh, text, Host, Switch};

// ---------------------------------------------------------------------------
// Helpers

fn mgmt(sw: &Switch, br: &str) -> String {
    sw.dir
        .join("run")
        .join(format!("{br}.mgmt"))
        .display()
        .to_string()
}

fn ovs_ofctl_out(args: &[&str]) -> Output {
    sh(&[&["ovs-ofctl"], args].concat())
}

/// Runs the real `ovs-ofctl`, which must succeed; returns its stdout.
fn ovs_ofctl(args: &[&str]) -> String {
    let o = ovs_ofctl_out(args);
    assert!(
        o.status.success(),
        "ovs-ofctl {args:?} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn write_file(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p.display().to_string()
}

/// Three hosts 10.0.0.1-3/24 on `br` as OpenFlow ports 1-3.
fn three_hosts(sw: &Switch, br: &str) -> [Host; 3] {
    let hs = [
        Host::new("10.0.0.1/24"),
        Host::new("10.0.0.2/24"),
        Host::new("10.0.0.3/24"),
    ];
    for (i, h) in hs.iter().enumerate() {
        let req = format!("ofport_request={}", i + 1);
        sw.vsctl(&[
            "add-port",
            br,
            &h.port,
            "--",
            "set",
            "interface",
            &h.port,
            &req,
        ]);
    }
    hs
}

/// One ping that must fail fast (1 s).
fn no_ping(h: &Host, ip: &str) -> bool {
    !h.exec(&["ping", "-c", "1", "-W", "1", "-q", ip])
        .status
        .success()
}

/// A port's counter in `ovs-ofctl dump-ports` output (`port  1: rx pkts=…`).
fn port_counter(dump: &str, port: &str, key: &str) -> u64 {
    let mut lines = dump.lines();
    while let Some(l) = lines.next() {
        let t = l.trim_start();
        if t.starts_with(&format!("port {port}:")) || t.starts_with(&format!("port  {port}:")) {
            let both = format!("{l} {}", lines.next().unwrap_or(""));
            return field(&both, key);
        }
    }
    panic!("no port {port} in:\n{dump}");
}

/// A Python virtual environment under /var/cache/fvs-py with `pkgs`,
/// created when missing (run-tests.sh normally does it first).
fn venv(name: &str, pkgs: &[&str], exe: &str) -> PathBuf {
    let dir = PathBuf::from("/var/cache/fvs-py").join(name);
    let bin = dir.join("bin").join(exe);
    if !bin.exists() {
        let o = sh(&["python3", "-m", "venv", &dir.display().to_string()]);
        assert!(o.status.success(), "venv {name}: {}", text(&o.stderr));
        let pip = dir.join("bin/pip").display().to_string();
        let o = sh(&[&[pip.as_str(), "install", "-q"], pkgs].concat());
        assert!(
            o.status.success(),
            "pip install {pkgs:?}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    assert!(
        bin.exists(),
        "{} missing after installing {pkgs:?}",
        bin.display()
    );
    bin
}

/// os-ken's own `simple_switch_13` app. Its releases since 2.0 no longer
/// ship the sample apps, and 1.4.1's dependencies do not run on Python
/// 3.11: the app file is taken from the 1.4.1 release and run by os-ken
/// 3.1 (Faucet's; 4.x has no osken-manager), as run-tests.sh does.
fn simple_switch_13(manager: &Path) -> PathBuf {
    let venv = manager.parent().and_then(Path::parent).expect("venv");
    let app = venv.join("simple_switch_13.py");
    if std::fs::metadata(&app).is_ok_and(|m| m.len() > 0) {
        return app;
    }
    let tmp = std::env::temp_dir().join(format!("fvs-osken-{}", std::process::id()));
    let pip = venv.join("bin/pip").display().to_string();
    let t = tmp.display().to_string();
    let o = sh(&[
        &pip,
        "download",
        "-q",
        "--no-deps",
        "-d",
        &t,
        "os-ken==1.4.1",
    ]);
    assert!(o.status.success(), "pip download: {}", text(&o.stderr));
    let code = "import sys, zipfile, glob\n\
                w = glob.glob(sys.argv[1] + '/os_ken-1.4.1-*.whl')[0]\n\
                open(sys.argv[2], 'wb').write(zipfile.ZipFile(w).read('os_ken/app/simple_switch_13.py'))\n";
    let part = format!("{}.tmp", app.display());
    let o = sh(&["python3", "-c", code, &t, &part]);
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(o.status.success(), "extract app: {}", text(&o.stderr));
    std::fs::rename(&part, &app).expect("rename");
    app
}

/// PATH with `dir` first.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process killed (by its pid) and reaped when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).expect("log");
        let f2 = f.try_clone().expect("dup");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `f` holds; false after `secs`.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------
// A raw OpenFlow client (hand-built bytes; nothing from fvs's codec).

const OFP10: u8 = 1;
const OFP13: u8 = 4;

fn header(version: u8, msg_type: u8, len: usize, xid: u32) -> Vec<u8> {
    let mut v = vec![version, msg_type];
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v.extend_from_slice(&xid.to_be_bytes());
    v
}

/// A message with a correct length field.
fn message(version: u8, msg_type: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let mut v = header(version, msg_type, 8 + body.len(), xid);
    v.extend_from_slice(body);
    v
}

struct RawConn {
    s: UnixStream,
    version: u8,
}

impl RawConn {
    /// Connects and negotiates `version` (a hello with only that version).
    fn open(path: &str, version: u8) -> RawConn {
        let s = UnixStream::connect(path).expect("connect mgmt");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut c = RawConn { s, version };
        c.send(&message(version, 0, 1, &[]));
        let (h, _) = c.recv().expect("hello");
        assert_eq!(h[1], 0, "expected a hello, got type {}", h[1]);
        c
    }

    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).expect("send");
    }

    /// The next message (header bytes, whole message); None on EOF/timeout.
    fn recv(&mut self) -> Option<([u8; 8], Vec<u8>)> {
        let mut h = [0u8; 8];
        self.s.read_exact(&mut h).ok()?;
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let mut rest = vec![0u8; len.saturating_sub(8)];
        self.s.read_exact(&mut rest).ok()?;
        let mut all = h.to_vec();
        all.extend_from_slice(&rest);
        Some((h, all))
    }

    /// Sends `msg` and returns the (type, code) of the error answering its xid.
    fn error_for(&mut self, msg: &[u8]) -> (u16, u16) {
        let xid = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
        self.send(msg);
        // A barrier after it: if the barrier reply comes first, no error came.
        let v = self.version;
        let barrier = xid | 0x8000_0000;
        self.send(&message(v, if v == OFP10 { 18 } else { 20 }, barrier, &[]));
        loop {
            let (h, m) = self.recv().expect("a reply (connection closed?)");
            let rx = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            if h[1] == 1 && rx == xid {
                let t = u16::from_be_bytes([m[8], m[9]]);
                let c = u16::from_be_bytes([m[10], m[11]]);
                // The error carries (the start of) the offending request.
                let n = (m.len() - 12).min(msg.len());
                assert!(n >= 8, "error without the request's header");
                assert_eq!(&m[12..12 + n], &msg[..n], "error data is the request");
                return (t, c);
            }
            if rx == barrier {
                panic!("no error for message {:02x?}", &msg[..msg.len().min(64)]);
            }
        }
    }

    /// Sends `msg` and returns the first reply carrying its xid.
    fn request(&mut self, msg: &[u8]) -> Vec<u8> {
        let xid = &msg[4..8];
        self.send(msg);
        loop {
            let (h, m) = self.recv().expect("a reply");
            if &h[4..8] == xid {
                return m;
            }
        }
    }

    /// An echo round trip with `payload` (the connection still serves).
    fn echo(&mut self, payload: &[u8]) {
        self.send(&message(self.version, 2, 0xecec, payload));
        loop {
            let (h, m) = self.recv().expect("echo reply");
            if h[1] == 3 {
                assert_eq!(&m[8..], payload, "echo payload");
                return;
            }
        }
    }
}

/// An OpenFlow 1.3 flow-mod (add, table 0) with `match_body` (the OXM
/// fields, unpadded) and `instructions` (raw).
fn flow_mod13(xid: u32, oxm: &[u8], instructions: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0; 8]); // cookie
    b.extend_from_slice(&[0; 8]); // cookie mask
    b.extend_from_slice(&[0, 0]); // table 0, OFPFC_ADD
    b.extend_from_slice(&[0, 0, 0, 0]); // idle, hard timeouts
    b.extend_from_slice(&100u16.to_be_bytes()); // priority
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // buffer: none
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_port: any
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_group: any
    b.extend_from_slice(&[0, 0, 0, 0]); // flags, pad
                                        // ofp_match: type OXM (1), length (without padding), fields, padding.
    let mlen = 4 + oxm.len();
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&(mlen as u16).to_be_bytes());
    b.extend_from_slice(oxm);
    b.resize(b.len() + (mlen.div_ceil(8) * 8 - mlen), 0);
    b.extend_from_slice(instructions);
    message(OFP13, 14, xid, &b)
}

/// OXM in_port=`p`.
fn oxm_in_port(p: u32) -> Vec<u8> {
    let mut v = vec![0x80, 0x00, 0x00, 4];
    v.extend_from_slice(&p.to_be_bytes());
    v
}

/// An APPLY_ACTIONS instruction holding `actions`.
fn apply(actions: &[u8]) -> Vec<u8> {
    let mut v = 4u16.to_be_bytes().to_vec();
    v.extend_from_slice(&((8 + actions.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(actions);
    v
}

/// An OpenFlow 1.3 output action.
fn output13(port: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 16];
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&[0xff, 0xe5, 0, 0, 0, 0, 0, 0]);
    v
}

/// An OpenFlow 1.0 flow-mod (add) matching everything, with `actions`.
fn flow_mod10(xid: u32, actions: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x003f_ffffu32.to_be_bytes()); // wildcards: all
    b.extend_from_slice(&[0; 36]); // the rest of ofp_match
    b.extend_from_slice(&[0; 8]); // cookie
    b.extend_from_slice(&[0, 0]); // OFPFC_ADD
    b.extend_from_slice(&[0, 0, 0, 0]); // timeouts
    b.extend_from_slice(&100u16.to_be_bytes());
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // buffer
    b.extend_from_slice(&0xffffu16.to_be_bytes()); // out_port none
    b.extend_from_slice(&[0, 0]); // flags
    b.extend_from_slice(actions);
    message(OFP10, 14, xid, &b)
}

// ---------------------------------------------------------------------------
// Tests

/// `ovs-ofctl` drives fvs over OpenFlow 1.3, then over OpenFlow 1.0 (with
/// OpenFlow 1.0's own match, `-F openflow10`), and packets follow the flows.
#[test]
fn ovs_ofctl_programs_fvs() {
    if !can_run("ovs_ofctl_programs_fvs") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &["fail_mode=secure"]);
    let [h1, h2, h3] = three_hosts(&sw, &br);
    let m = mgmt(&sw, &br);
    let flows = write_file(
        &sw.dir,
        "flows.txt",
        "priority=100,arp,actions=NORMAL\n\
         priority=50,ip,nw_dst=10.0.0.1,actions=output:1\n\
         priority=50,ip,nw_dst=10.0.0.2,actions=output:2\n",
    );

    // ---- OpenFlow 1.3
    let o13 = ["-O", "OpenFlow13"];
    let of13 = |args: &[&str]| ovs_ofctl(&[&o13[..], args].concat());
    let show = of13(&["show", &m]);
    assert!(show.contains("OFPT_FEATURES_REPLY (OF1.3)"), "{show}");
    for (i, h) in [&h1, &h2, &h3].iter().enumerate() {
        assert!(
            show.contains(&format!(" {}({}): addr:", i + 1, h.port)),
            "{show}"
        );
    }
    // Secure and no flows: nothing passes.
    of13(&["del-flows", &m]);
    assert!(
        no_ping(&h1, &h2.ip),
        "secure bridge without flows forwarded"
    );
    of13(&["add-flows", &m, &flows]);
    assert!(h1.ping(&h2.ip, 2), "h1 → h2 after add-flows");
    assert!(no_ping(&h1, &h3.ip), "h3 has no flow yet");
    of13(&[
        "add-flow",
        &m,
        "priority=50,ip,nw_dst=10.0.0.3,actions=output:3",
    ]);
    assert!(h1.ping(&h3.ip, 2), "h1 → h3 after add-flow");

    // Through a group: mod-flows points the flow at it.
    of13(&["add-group", &m, "group_id=7,type=all,bucket=output:3"]);
    of13(&["mod-flows", &m, "ip,nw_dst=10.0.0.3,actions=group:7"]);
    let groups = of13(&["dump-groups", &m]);
    assert!(
        groups.contains("group_id=7,type=all,bucket=actions=output:3"),
        "{groups}"
    );
    let dump = of13(&["dump-flows", &m]);
    assert!(dump.contains("nw_dst=10.0.0.3 actions=group:7"), "{dump}");
    assert!(h1.ping(&h3.ip, 2), "h1 → h3 through group 7");
    let gstats = of13(&["dump-group-stats", &m]);
    let line = gstats
        .lines()
        .find(|l| l.contains("group_id=7"))
        .unwrap_or_else(|| panic!("{gstats}"));
    assert!(field(line, "packet_count=") >= 2, "{gstats}");
    assert!(field(line, "ref_count=") == 1, "{gstats}");
    of13(&["mod-flows", &m, "ip,nw_dst=10.0.0.3,actions=drop"]);
    assert!(no_ping(&h1, &h3.ip), "mod-flows to drop");

    // --strict: a different priority deletes nothing; the exact one does.
    of13(&[
        "--strict",
        "del-flows",
        &m,
        "priority=49,ip,nw_dst=10.0.0.2",
    ]);
    assert!(of13(&["dump-flows", &m]).contains("nw_dst=10.0.0.2"));
    assert!(h1.ping(&h2.ip, 1), "a strict delete of another priority");
    of13(&[
        "--strict",
        "del-flows",
        &m,
        "priority=50,ip,nw_dst=10.0.0.2",
    ]);
    let dump = of13(&["dump-flows", &m]);
    assert!(!dump.contains("nw_dst=10.0.0.2"), "{dump}");
    assert!(no_ping(&h1, &h2.ip), "h2's flow was deleted");
    assert!(dump.starts_with("OFPST_FLOW reply (OF1.3)"), "{dump}");
    assert!(flow_packets(&dump, "nw_dst=10.0.0.1 ") >= 3, "{dump}");
    assert!(flow_packets(&dump, "arp") >= 1, "{dump}");

    let ports = of13(&["dump-ports", &m]);
    assert!(ports.starts_with("OFPST_PORT reply (OF1.3)"), "{ports}");
    assert!(port_counter(&ports, "1", "rx pkts=") >= 5, "{ports}");
    assert!(port_counter(&ports, "3", "tx pkts=") >= 2, "{ports}");
    let tables = of13(&["dump-tables", &m]);
    assert!(tables.starts_with("OFPST_TABLE reply (OF1.3)"), "{tables}");
    let t0 = tables.split("table 1").next().unwrap_or("");
    assert_eq!(field(t0, "active="), 3, "{tables}");
    // fvs-ofctl reads the same tables.
    let ours = sw.ofctl(&["-O", "OpenFlow13", "dump-flows", &br]);
    assert!(ours.contains("nw_dst=10.0.0.3 actions=drop"), "{ours}");

    // ---- OpenFlow 1.0 with its own match format
    let o10 = ["-O", "OpenFlow10", "-F", "openflow10"];
    let of10 = |args: &[&str]| ovs_ofctl(&[&o10[..], args].concat());
    let show = of10(&["show", &m]);
    assert!(show.starts_with("OFPT_FEATURES_REPLY (xid="), "{show}");
    assert!(show.contains(&format!(" 2({}): addr:", h2.port)), "{show}");
    of10(&["del-flows", &m]);
    assert!(of10(&["dump-flows", &m]).lines().count() == 1);
    assert!(no_ping(&h2, &h3.ip), "no flows over 1.0");
    of10(&["add-flows", &m, &flows]);
    of10(&[
        "add-flow",
        &m,
        "priority=50,ip,nw_dst=10.0.0.3,actions=output:3",
    ]);
    assert!(h2.ping(&h3.ip, 2), "h2 → h3 after OpenFlow 1.0 add-flow");
    of10(&["mod-flows", &m, "ip,nw_dst=10.0.0.3,actions=drop"]);
    assert!(no_ping(&h2, &h3.ip), "OpenFlow 1.0 mod-flows to drop");
    of10(&["mod-flows", &m, "ip,nw_dst=10.0.0.3,actions=output:3"]);
    assert!(h1.ping(&h3.ip, 2), "OpenFlow 1.0 mod-flows back");
    of10(&[
        "--strict",
        "del-flows",
        &m,
        "priority=51,ip,nw_dst=10.0.0.3",
    ]);
    assert!(
        h1.ping(&h3.ip, 1),
        "strict delete of another priority (1.0)"
    );
    of10(&[
        "--strict",
        "del-flows",
        &m,
        "priority=50,ip,nw_dst=10.0.0.3",
    ]);
    assert!(no_ping(&h1, &h3.ip), "strict delete (1.0)");
    let dump = of10(&["dump-flows", &m]);
    assert!(dump.starts_with("OFPST_FLOW reply (xid="), "{dump}");
    assert!(!dump.contains("nw_dst=10.0.0.3"), "{dump}");
    assert!(flow_packets(&dump, "nw_dst=10.0.0.1 ") >= 3, "{dump}");
    let ports = of10(&["dump-ports", &m]);
    assert!(ports.starts_with("OFPST_PORT reply (xid="), "{ports}");
    assert!(port_counter(&ports, "2", "rx pkts=") >= 2, "{ports}");
    let tables = of10(&["dump-tables", &m]);
    assert!(tables.starts_with("OFPST_TABLE reply (xid="), "{tables}");
    // OpenFlow 1.0 has no groups: Nicira's group request gets an error.
    let o = ovs_ofctl_out(&["-O", "OpenFlow10", "dump-groups", &m]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(out.contains("OFPT_ERROR"), "{out}");
    assert!(sw.alive());
}

/// Malformed messages on a raw socket get the error the specification
/// names, carrying the request, and the connection and daemon keep serving.
#[test]
fn malformed_messages_get_errors() {
    if !can_run("malformed_messages_get_errors") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    let m = mgmt(&sw, &br);

    // ---- OpenFlow 1.3
    let mut c = RawConn::open(&m, OFP13);
    // Bad length: a features request (fixed 8 bytes) with 4 extra bytes.
    let mut feat = header(OFP13, 5, 12, 10);
    feat.extend_from_slice(&[0; 4]);
    assert_eq!(c.error_for(&feat), (1, 6), "OFPBRC_BAD_LEN");
    // Bad length: a set-config (12 bytes) cut to 10.
    let mut sc = header(OFP13, 9, 10, 11);
    sc.extend_from_slice(&[0, 0]);
    assert_eq!(c.error_for(&sc), (1, 6), "OFPBRC_BAD_LEN");
    // Unknown message type.
    assert_eq!(
        c.error_for(&message(OFP13, 0x63, 12, &[1, 2, 3, 4])),
        (1, 1),
        "OFPBRC_BAD_TYPE"
    );
    // Unknown multipart type.
    let mut mp = 0x7777u16.to_be_bytes().to_vec();
    mp.extend_from_slice(&[0; 6]);
    assert_eq!(
        c.error_for(&message(OFP13, 18, 13, &mp)),
        (1, 2),
        "OFPBRC_BAD_STAT"
    );
    // Bad OXM: an unknown field of the OpenFlow basic class.
    let bad_field = [0x80, 0x00, 0x7e << 1, 4, 0, 0, 0, 1];
    assert_eq!(
        c.error_for(&flow_mod13(14, &bad_field, &[])),
        (4, 6),
        "OFPBMC_BAD_FIELD"
    );
    // Bad OXM: in_port with a 2-byte payload.
    let bad_len = [0x80, 0x00, 0x00, 2, 0, 1];
    assert_eq!(
        c.error_for(&flow_mod13(15, &bad_len, &[])),
        (4, 1),
        "OFPBMC_BAD_LEN"
    );
    // Bad OXM: the same field twice.
    let dup = [oxm_in_port(1), oxm_in_port(2)].concat();
    assert_eq!(
        c.error_for(&flow_mod13(16, &dup, &[])),
        (4, 10),
        "OFPBMC_DUP_FIELD"
    );
    // Bad OXM: ip_proto without eth_type=IP (a missing prerequisite).
    let prereq = [0x80, 0x00, 10 << 1, 1, 6];
    assert_eq!(
        c.error_for(&flow_mod13(17, &prereq, &[])),
        (4, 9),
        "OFPBMC_BAD_PREREQ"
    );
    // Truncated actions: an output action whose length runs past the
    // instruction (16 claimed, 8 present).
    let out = output13(1);
    let mut ins = 4u16.to_be_bytes().to_vec();
    ins.extend_from_slice(&16u16.to_be_bytes());
    ins.extend_from_slice(&[0; 4]);
    ins.extend_from_slice(&out[..8]);
    assert_eq!(
        c.error_for(&flow_mod13(18, &oxm_in_port(1), &ins)),
        (2, 1),
        "OFPBAC_BAD_LEN"
    );
    // Truncated actions: an action length not a multiple of 8.
    let mut odd = output13(1);
    odd[3] = 12;
    assert_eq!(
        c.error_for(&flow_mod13(19, &oxm_in_port(1), &apply(&odd))),
        (2, 1),
        "OFPBAC_BAD_LEN"
    );
    // Oversize: an instruction claiming more bytes than the message holds.
    let mut big = apply(&output13(1));
    big[2..4].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(
        c.error_for(&flow_mod13(20, &oxm_in_port(1), &big)),
        (3, 7),
        "OFPBIC_BAD_LEN"
    );
    // Oversize: a match length beyond the message (OVS: OFPBMC_BAD_LEN).
    let mut fm = flow_mod13(21, &oxm_in_port(1), &[]);
    fm[50..52].copy_from_slice(&400u16.to_be_bytes());
    assert_eq!(c.error_for(&fm), (4, 1), "OFPBMC_BAD_LEN");
    // Oversize: a maximum-size (64 KiB) features request.
    let mut huge = header(OFP13, 5, 65535, 22);
    huge.resize(65535, 0xab);
    assert_eq!(c.error_for(&huge), (1, 6), "OFPBRC_BAD_LEN (65535 bytes)");
    // An unknown action type and an output to a bad port.
    let mut unk = output13(1);
    unk[0..2].copy_from_slice(&0x0077u16.to_be_bytes());
    assert_eq!(
        c.error_for(&flow_mod13(23, &oxm_in_port(1), &apply(&unk))),
        (2, 0),
        "OFPBAC_BAD_TYPE"
    );
    // (1.3 ports 0xff00..0xfffffeff have no 16-bit equivalent, as in OVS.)
    assert_eq!(
        c.error_for(&flow_mod13(
            24,
            &oxm_in_port(1),
            &apply(&output13(0x1_0000))
        )),
        (2, 4),
        "OFPBAC_BAD_OUT_PORT"
    );
    // A message of another version than the one negotiated.
    assert_eq!(
        c.error_for(&message(OFP10, 2, 25, &[])),
        (1, 0),
        "OFPBRC_BAD_VERSION"
    );
    // Unsupported: meters (OFPT_METER_MOD) are refused, not dropped.
    let (t, _) = c.error_for(&message(OFP13, 29, 26, &[0; 8]));
    assert_ne!(t, 0, "meter-mod answered with an error");
    // Well-formed requests on the same connection: set/get config, async
    // config, roles (a slave may not modify the tables), table features.
    c.send(&message(OFP13, 9, 60, &[0, 0, 0, 200]));
    let cfg = c.request(&message(OFP13, 7, 61, &[]));
    assert_eq!(
        (cfg[1], &cfg[8..12]),
        (8, &[0u8, 0, 0, 200][..]),
        "get-config"
    );
    let asy = c.request(&message(OFP13, 26, 62, &[]));
    assert_eq!((asy[1], asy.len()), (27, 32), "get-async reply");
    let role = |r: u32| [r.to_be_bytes().to_vec(), vec![0; 12]].concat();
    let rep = c.request(&message(OFP13, 24, 63, &role(3)));
    assert_eq!(
        (rep[1], &rep[8..12]),
        (25, &3u32.to_be_bytes()[..]),
        "role slave"
    );
    assert_eq!(
        c.error_for(&flow_mod13(64, &oxm_in_port(1), &[])),
        (1, 10),
        "OFPBRC_IS_SLAVE"
    );
    let rep = c.request(&message(OFP13, 24, 65, &role(1)));
    assert_eq!(
        (rep[1], &rep[8..12]),
        (25, &1u32.to_be_bytes()[..]),
        "role equal"
    );
    let tf = c.request(&message(OFP13, 18, 66, &[0, 12, 0, 0, 0, 0, 0, 0]));
    assert_eq!((tf[1], &tf[8..10]), (19, &[0u8, 12][..]), "table features");
    // The connection still serves, a maximum-size echo included.
    c.echo(b"still here");
    c.echo(&vec![0x5a; 65535 - 8]);
    // Nothing of the bad flow-mods reached the table.
    let dump = ovs_ofctl(&["-O", "OpenFlow13", "dump-flows", &m]);
    assert_eq!(dump.lines().count(), 2, "only NORMAL:\n{dump}");

    // ---- OpenFlow 1.0
    let mut c = RawConn::open(&m, OFP10);
    let mut feat = header(OFP10, 5, 16, 30);
    feat.extend_from_slice(&[0; 8]);
    assert_eq!(c.error_for(&feat), (1, 6), "1.0 OFPBRC_BAD_LEN");
    assert_eq!(
        c.error_for(&message(OFP10, 0x55, 31, &[])),
        (1, 1),
        "1.0 OFPBRC_BAD_TYPE"
    );
    // A flow-mod cut inside its match.
    let fm = flow_mod10(32, &[]);
    let mut cut = fm[..30].to_vec();
    cut[2..4].copy_from_slice(&30u16.to_be_bytes());
    assert_eq!(c.error_for(&cut), (1, 6), "1.0 OFPBRC_BAD_LEN");
    // Truncated action: output claims 8 bytes, 4 present.
    assert_eq!(
        c.error_for(&flow_mod10(33, &[0, 0, 0, 8, 0, 1])),
        (2, 1),
        "1.0 OFPBAC_BAD_LEN"
    );
    assert_eq!(
        c.error_for(&flow_mod10(34, &[0, 0x42, 0, 8, 0, 1, 0, 0])),
        (2, 0),
        "1.0 OFPBAC_BAD_TYPE"
    );
    c.echo(b"1.0 too");

    // A header whose length is below 8 cannot be framed: an error, then
    // the switch closes that connection (and only that one).
    let mut c2 = RawConn::open(&m, OFP13);
    c2.send(&header(OFP13, 2, 4, 40));
    let (h, msg) = c2.recv().expect("an error before closing");
    assert_eq!(h[1], 1, "error message");
    assert_eq!(&msg[8..12], &[0, 1, 0, 6], "OFPBRC_BAD_LEN");
    assert!(
        c2.recv().is_none(),
        "connection closed after a framing error"
    );
    // Garbage before any hello.
    let mut raw = UnixStream::connect(&m).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = raw.write_all(&[0xff; 300]);
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink);

    // The daemon and the first connection still serve.
    c.echo(b"after the others");
    assert!(sw.alive(), "daemon died");
    let show = ovs_ofctl(&["-O", "OpenFlow13", "show", &m]);
    assert!(show.contains("OFPT_FEATURES_REPLY"), "{show}");
}

/// The Controller table: active `tcp:` (with reconnection) and passive
/// `ptcp:` targets, their state columns, get/del-controller; the Bridge's
/// `protocols` in version negotiation; fail_mode standalone vs secure.
#[test]
fn controllers_protocols_and_fail_mode() {
    if !can_run("controllers_protocols_and_fail_mode") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    let h1 = Host::new("10.0.0.1/24");
    let h2 = Host::new("10.0.0.2/24");
    sw.vsctl(&["add-port", &br, &h1.port]);
    sw.vsctl(&["add-port", &br, &h2.port]);
    // Standalone without a controller: the switch is a learning switch.
    assert!(h1.ping(&h2.ip, 2), "standalone bridge forwards (NORMAL)");

    // An active controller: a listener of this test.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let aport = listener.local_addr().unwrap().port();
    let pport = free_port();
    let active = format!("tcp:127.0.0.1:{aport}");
    let passive = format!("ptcp:{pport}:127.0.0.1");
    sw.vsctl(&["set-controller", &br, &active, &passive]);
    // (Sorted, as ovs-vsctl prints them.)
    let got = sw.vsctl(&["get-controller", &br]);
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        vec![passive.as_str(), active.as_str()]
    );
    let (mut s, _) = listener.accept().expect("the switch connects");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let read_msg = |s: &mut TcpStream| -> Vec<u8> {
        let mut h = [0u8; 8];
        s.read_exact(&mut h).expect("header");
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let mut b = vec![0u8; len - 8];
        s.read_exact(&mut b).expect("body");
        [h.to_vec(), b].concat()
    };
    let hello = read_msg(&mut s);
    assert_eq!((hello[0], hello[1]), (OFP13, 0), "hello of 1.3 first");
    // Our hello (1.3 only), a features request, a role request (master).
    s.write_all(&message(OFP13, 0, 1, &[])).unwrap();
    s.write_all(&message(OFP13, 5, 2, &[])).unwrap();
    let mut role = 2u32.to_be_bytes().to_vec();
    role.extend_from_slice(&[0; 12]);
    s.write_all(&message(OFP13, 24, 3, &role)).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = read_msg(&mut s);
        if m[1] == 6 || m[1] == 25 {
            seen.push(m[1]);
        }
    }
    assert!(seen.contains(&6) && seen.contains(&25), "{seen:?}");
    // A port added: the controller hears of it (port-status, reason ADD).
    let h3 = Host::new("10.0.0.3/24");
    sw.vsctl(&["add-port", &br, &h3.port]);
    let status = loop {
        let m = read_msg(&mut s);
        if m[1] == 12 {
            break m;
        }
    };
    assert_eq!(status[8], 0, "OFPPR_ADD");
    let name = String::from_utf8_lossy(&status[32..48]);
    assert_eq!(
        name.trim_end_matches('\0'),
        h3.port,
        "port-status names the port"
    );
    // A flow with SEND_FLOW_REM and a 1 s hard timeout: flow-removed follows.
    let mut fm = flow_mod13(50, &oxm_in_port(1), &apply(&output13(2)));
    fm[8..16].copy_from_slice(&0x77u64.to_be_bytes()); // cookie
    fm[28..30].copy_from_slice(&1u16.to_be_bytes()); // hard timeout
    fm[44..46].copy_from_slice(&1u16.to_be_bytes()); // OFPFF_SEND_FLOW_REM
    s.write_all(&fm).unwrap();
    let t0 = Instant::now();
    let removed = loop {
        let m = read_msg(&mut s);
        assert_ne!(m[1], 1, "error for the flow-mod: {m:02x?}");
        if m[1] == 11 {
            break m;
        }
    };
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "removed too early"
    );
    assert_eq!(&removed[8..16], &0x77u64.to_be_bytes(), "cookie");
    assert_eq!(removed[18], 1, "OFPRR_HARD_TIMEOUT");
    let uuid_of = |target: &str| -> String {
        sw.vsctl(&[
            "--bare",
            "--columns=_uuid",
            "find",
            "Controller",
            &format!("target=\"{target}\""),
        ])
        .trim()
        .to_string()
    };
    let au = uuid_of(&active);
    let pu = uuid_of(&passive);
    sw.wait_for(10, "active controller is_connected", || {
        sw.get("Controller", &au, "is_connected") == "true"
            && sw.get("Controller", &au, "role") == "master"
    });
    let status = sw.get("Controller", &au, "status");
    assert!(status.contains("state=ACTIVE"), "{status}");
    let pstatus = sw.get("Controller", &pu, "status");
    assert!(pstatus.contains("LISTENING"), "{pstatus}");
    // The passive target serves ovs-ofctl over TCP.
    let ptarget = format!("tcp:127.0.0.1:{pport}");
    let show = ovs_ofctl(&["-O", "OpenFlow13", "show", &ptarget]);
    assert!(show.contains(&h1.port), "{show}");

    // The controller goes away: the switch reconnects (with back-off).
    drop(s);
    sw.wait_for(10, "is_connected=false", || {
        sw.get("Controller", &au, "is_connected") == "false"
    });
    listener.set_nonblocking(false).unwrap();
    let t0 = Instant::now();
    let (mut s, _) = listener.accept().expect("reconnection");
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(read_msg(&mut s)[1], 0, "hello again");
    drop(s);

    // protocols: only 1.3 → a 1.0-only client fails negotiation; 1.0 → the reverse.
    sw.vsctl(&["set", "bridge", &br, "protocols=OpenFlow13"]);
    let m = mgmt(&sw, &br);
    assert!(!ovs_ofctl_out(&["-O", "OpenFlow10", "show", &m])
        .status
        .success());
    assert!(!ovs_ofctl_out(&["-O", "OpenFlow10", "show", &ptarget])
        .status
        .success());
    assert!(ovs_ofctl_out(&["-O", "OpenFlow13", "show", &m])
        .status
        .success());
    sw.vsctl(&["set", "bridge", &br, "protocols=OpenFlow10"]);
    assert!(!ovs_ofctl_out(&["-O", "OpenFlow13", "show", &m])
        .status
        .success());
    assert!(ovs_ofctl_out(&["-O", "OpenFlow10", "show", &m])
        .status
        .success());
    sw.vsctl(&["clear", "bridge", &br, "protocols"]);

    // del-controller: no controllers, no listener.
    sw.vsctl(&["del-controller", &br]);
    assert_eq!(sw.vsctl(&["get-controller", &br]).trim(), "");
    assert_eq!(sw.vsctl(&["list", "Controller"]).trim(), "");
    assert!(eventually(5, || TcpStream::connect(("127.0.0.1", pport)).is_err()));

    // fail_mode secure: no flows, no forwarding; back to standalone: NORMAL.
    sw.vsctl(&["set-fail-mode", &br, "secure"]);
    sw.ofctl(&["del-flows", &br]);
    assert!(no_ping(&h1, &h2.ip), "secure bridge without flows");
    sw.vsctl(&["del-fail-mode", &br]);
    sw.ofctl(&["add-flow", &br, "actions=NORMAL"]);
    assert!(h1.ping(&h2.ip, 2), "standalone again");

    // Fail-open: a standalone bridge whose controller stays unreachable
    // becomes a learning switch after 3 inactivity probes; secure never.
    sw.ofctl(&["del-flows", &br]);
    let dead = format!("tcp:127.0.0.1:{}", free_port());
    sw.vsctl(&["set-controller", &br, &dead]);
    let du = uuid_of(&dead);
    sw.vsctl(&["set", "controller", &du, "inactivity_probe=1000"]);
    assert!(
        eventually(20, || h1.ping(&h2.ip, 1)),
        "no fail-open\n{}",
        sw.log()
    );
    assert!(sw.log().contains("entering fail-open mode"), "{}", sw.log());
    sw.vsctl(&["set-fail-mode", &br, "secure"]);
    assert!(
        eventually(5, || no_ping(&h1, &h2.ip)),
        "secure bridge still failed open"
    );
    assert!(sw.alive());
}

/// os-ken's own `simple_switch_13` app as the controller over TCP: three
/// namespaces ping each other, the app learning their MACs (its flows
/// with `eth_dst` appear in the table).
#[test]
fn os_ken_simple_switch_13() {
    if !can_run("os_ken_simple_switch_13") {
        return;
    }
    let manager = venv("osken", &["os-ken==3.1.0"], "osken-manager");
    let app = simple_switch_13(&manager);
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &["fail_mode=secure", "protocols=OpenFlow13"]);
    let hs = three_hosts(&sw, &br);
    let port = free_port();
    let ctl = Proc::spawn(
        Command::new(&manager).args([
            "--ofp-listen-host",
            "127.0.0.1",
            "--ofp-tcp-listen-port",
            &port.to_string(),
            &app.display().to_string(),
        ]),
        sw.dir.join("osken.log"),
    );
    sw.vsctl(&["set-controller", &br, &format!("tcp:127.0.0.1:{port}")]);
    sw.wait_for(30, "os-ken connected", || {
        sw.vsctl(&["--bare", "--columns=is_connected", "list", "Controller"])
            .trim()
            == "true"
    });
    // The app installs its table-miss flow (to the controller) on connect.
    let m = mgmt(&sw, &br);
    sw.wait_for(10, "table-miss flow", || {
        ovs_ofctl(&["-O", "OpenFlow13", "dump-flows", &m]).contains("actions=CONTROLLER:65535")
    });
    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        assert!(
            hs[a].ping(&hs[b].ip, 3),
            "{} → {} through os-ken\n{}",
            hs[a].ip,
            hs[b].ip,
            ovs_ofctl(&["-O", "OpenFlow13", "dump-flows", &m])
        );
    }
    let dump = ovs_ofctl(&["-O", "OpenFlow13", "dump-flows", &m]);
    for h in &hs {
        assert!(
            dump.contains(&format!("dl_dst={}", h.mac)),
            "no learned flow for {}:\n{dump}",
            h.mac
        );
    }
    let mut ctl = ctl;
    assert!(ctl.alive(), "os-ken exited:\n{}", ctl.log());
    assert!(ctl.log().contains("packet in"), "{}", ctl.log());
}

/// Faucet with two VLANs: hosts 1 and 2 in VLAN 100, host 3 in VLAN 200.
/// Within a VLAN they reach each other; across, not.
#[test]
fn faucet_two_vlans() {
    if !can_run("faucet_two_vlans") {
        return;
    }
    let faucet = venv("faucet", &["faucet"], "faucet");
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let dpid = "0000000000000f01";
    sw.add_netdev_bridge(
        &br,
        &[
            "fail_mode=secure",
            "protocols=OpenFlow13",
            &format!("other_config:datapath-id={dpid}"),
        ],
    );
    // Hosts 1, 2 (VLAN 100) share a subnet with host 3 (VLAN 200), so only
    // the VLANs keep 3 apart.
    let hs = three_hosts(&sw, &br);
    let port = free_port();
    let cfg = write_file(
        &sw.dir,
        "faucet.yaml",
        "vlans:\n\
         \x20 office:\n\
         \x20   vid: 100\n\
         \x20 guest:\n\
         \x20   vid: 200\n\
         dps:\n\
         \x20 fvs:\n\
         \x20   dp_id: 0xf01\n\
         \x20   hardware: \"Open vSwitch\"\n\
         \x20   interfaces:\n\
         \x20     1:\n\
         \x20       native_vlan: office\n\
         \x20     2:\n\
         \x20       native_vlan: office\n\
         \x20     3:\n\
         \x20       native_vlan: guest\n",
    );
    let ctl = Proc::spawn(
        Command::new(&faucet)
            .args([
                "--ryu-ofp-listen-host=127.0.0.1",
                &format!("--ryu-ofp-tcp-listen-port={port}"),
            ])
            // Faucet execs osken-manager from PATH: its venv's.
            .env("PATH", path_with(faucet.parent().expect("bin dir")))
            .env("FAUCET_CONFIG", &cfg)
            .env("FAUCET_LOG", sw.dir.join("faucet.log"))
            .env("FAUCET_EXCEPTION_LOG", sw.dir.join("faucet-exc.log"))
            .env("FAUCET_PROMETHEUS_PORT", free_port().to_string())
            .env("FAUCET_PROMETHEUS_ADDR", "127.0.0.1"),
        sw.dir.join("faucet.out"),
    );
    sw.vsctl(&["set-controller", &br, &format!("tcp:127.0.0.1:{port}")]);
    let flog = sw.dir.join("faucet.log");
    let m = mgmt(&sw, &br);
    sw.wait_for(60, "Faucet configured the switch", || {
        std::fs::read_to_string(&flog)
            .unwrap_or_default()
            .contains("Port 3 (3) up")
            || ovs_ofctl(&["-O", "OpenFlow13", "dump-flows", &m])
                .lines()
                .count()
                > 10
    });
    let faucet_log = || {
        format!(
            "{}\n{}\n{}",
            std::fs::read_to_string(&flog).unwrap_or_default(),
            std::fs::read_to_string(sw.dir.join("faucet-exc.log")).unwrap_or_default(),
            ovs_ofctl(&["-O", "OpenFlow13", "dump-flows", &m])
        )
    };
    assert!(
        eventually(20, || hs[0].ping(&hs[1].ip, 1)),
        "VLAN 100: 1 → 2\n{}",
        faucet_log()
    );
    assert!(
        hs[1].ping(&hs[0].ip, 2),
        "VLAN 100: 2 → 1\n{}",
        faucet_log()
    );
    assert!(no_ping(&hs[0], &hs[2].ip), "VLAN 100 reached VLAN 200");
    assert!(no_ping(&hs[2], &hs[1].ip), "VLAN 200 reached VLAN 100");
    let dump = ovs_ofctl(&["-O", "OpenFlow13", "dump-flows", &m]);
    assert!(dump.contains("dl_vlan=100"), "{dump}");
    assert!(dump.contains("dl_vlan=200"), "{dump}");
    let mut ctl = ctl;
    assert!(ctl.alive(), "faucet exited:\n{}", ctl.log());
    assert!(sw.alive());
}
