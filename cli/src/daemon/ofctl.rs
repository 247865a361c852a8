//! `fvs-ofctl`'s commands as an OpenFlow client: each command opens an
//! OpenFlow connection to the bridge (its management socket, or in-process
//! to a [`Daemon`]), sends requests and prints the replies exactly as
//! `ovs-ofctl` (OVS 3.1) prints them.
//!
//! Without `-O`, like `ovs-ofctl`, commands speak OpenFlow 1.0 with Nicira
//! extensions (so `dump-flows` is an `NXST_FLOW` reply with idle ages);
//! unlike it, flow-mods that need OpenFlow 1.1+ instructions (`goto_table`,
//! `clear_actions`, `write_actions`) and group commands switch to OpenFlow
//! 1.3 rather than fail. `-O OpenFlow13` makes every command use 1.3, and
//! the output is then what `ovs-ofctl -O OpenFlow13` prints.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use fvs_ofproto::actions::{port, OfAction};
use fvs_ofproto::flow_mod::{FlowMod, FlowModCommand, FlowStats};
use fvs_ofproto::group::GroupModCommand;
use fvs_ofproto::ofp::msg::{
    self, pc, ps, FlowModMsg, FlowStatsRequest, GroupModMsg, PortDesc, StatsReply, StatsRequest,
    NO_BUFFER, OFPG_ALL,
};
use fvs_ofproto::ofp::{
    self, version_label, BridgeShared, ConnKind, Frame, Msg, Session, OFP10, OFP13,
};
use fvs_ofproto::syntax::{
    flow_stats_to_flow_mod, format_duration, format_flow_mod, format_flow_mod_line,
    format_flow_stats_with, format_group, parse_flow_filter, parse_flow_mod, parse_flow_mods,
    parse_group_mod, PortMap, PortNames,
};

use super::openflow::{mgmt_path, PortState, View};
use super::Daemon;

/// Options that change what a command does or prints.
#[derive(Clone, Debug, Default)]
pub struct OfctlOptions {
    pub strict: bool,
    pub no_stats: bool,
    pub names: bool,
    /// `-O`: the versions allowed (`None`: fvs-ofctl's default choice).
    pub versions: Option<u32>,
    pub timeout: Option<Duration>,
}

impl OfctlOptions {
    pub fn parse(flags: &[String]) -> OfctlOptions {
        OfctlOptions {
            strict: flags.iter().any(|f| f == "--strict"),
            no_stats: flags.iter().any(|f| f == "--no-stats"),
            names: flags.iter().any(|f| f == "--names"),
            ..OfctlOptions::default()
        }
    }
}

/// A way to exchange OpenFlow messages with a switch.
pub trait Transport {
    fn send(&mut self, frame: &[u8]) -> Result<(), String>;
    /// The next whole message.
    fn recv(&mut self) -> Result<Vec<u8>, String>;
}

/// A stream socket (the management socket, or `tcp:`/`unix:` targets).
pub struct SocketTransport {
    stream: Box<dyn ReadWrite>,
    buf: Vec<u8>,
    name: String,
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl SocketTransport {
    /// Connects to `target`: a bridge name (its management socket in the
    /// run directory), a socket path, `unix:PATH` or `tcp:HOST:PORT`.
    pub fn connect(target: &str, timeout: Option<Duration>) -> Result<SocketTransport, String> {
        let t = timeout.or(Some(Duration::from_secs(30)));
        if let Some(hp) = target.strip_prefix("tcp:") {
            let hp = if hp.contains(':') {
                hp.to_string()
            } else {
                format!("{hp}:{}", super::openflow::OFP_PORT)
            };
            let s = std::net::TcpStream::connect(&hp)
                .map_err(|e| format!("connecting to {target} ({})", os_error(&e)))?;
            let _ = s.set_read_timeout(t);
            let _ = s.set_nodelay(true);
            return Ok(SocketTransport {
                stream: Box::new(s),
                buf: Vec::new(),
                name: target.into(),
            });
        }
        let (path, named) = match target.strip_prefix("unix:") {
            Some(p) => (std::path::PathBuf::from(p), false),
            None if target.contains('/') => (std::path::PathBuf::from(target), false),
            None => (mgmt_path(target), true),
        };
        if named && !path.exists() {
            return Err(format!("{target} is not a bridge or a socket"));
        }
        let s = UnixStream::connect(&path).map_err(|e| {
            if named {
                format!("{target} is not a bridge or a socket")
            } else {
                format!("connecting to unix:{} ({})", path.display(), os_error(&e))
            }
        })?;
        let _ = s.set_read_timeout(t);
        Ok(SocketTransport {
            stream: Box::new(s),
            buf: Vec::new(),
            name: target.into(),
        })
    }
}

fn os_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

impl Transport for SocketTransport {
    fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(frame)
            .map_err(|e| format!("{}: send failed ({e})", self.name))
    }

    fn recv(&mut self) -> Result<Vec<u8>, String> {
        let mut tmp = [0u8; 65536];
        loop {
            match msg::frame_len(&self.buf) {
                Some(Ok(n)) if self.buf.len() >= n => return Ok(self.buf.drain(..n).collect()),
                Some(Err(_)) => return Err(format!("{}: malformed OpenFlow message", self.name)),
                _ => {}
            }
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(format!("{}: connection closed by peer", self.name)),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!("{}: timeout waiting for a reply", self.name))
                }
                Err(e) => return Err(format!("{}: receive failed ({e})", self.name)),
            }
        }
    }
}

/// An in-process connection to a daemon's bridge (no socket).
pub struct LocalTransport {
    daemon: Arc<Daemon>,
    session: Session,
    shared: BridgeShared,
    ports: PortState,
    pending: VecDeque<Vec<u8>>,
}

impl LocalTransport {
    pub fn new(daemon: &Arc<Daemon>, bridge: &str) -> Result<LocalTransport, String> {
        if daemon.of.bridge_id(bridge).is_none() {
            return Err(format!("{bridge} is not a bridge or a socket"));
        }
        let mut session = Session::new(bridge, ofp::SUPPORTED, ConnKind::Service);
        let pending = session.take_output().into();
        Ok(LocalTransport {
            daemon: daemon.clone(),
            session,
            shared: BridgeShared::default(),
            ports: PortState::default(),
            pending,
        })
    }
}

impl Transport for LocalTransport {
    fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        let dpids = HashMap::new();
        let view = View {
            daemon: &self.daemon,
            dpids: &dpids,
            ports: &self.ports,
        };
        let _ = self
            .session
            .receive(&self.daemon.of, &view, &mut self.shared, frame);
        self.pending.extend(self.session.take_output());
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>, String> {
        self.pending
            .pop_front()
            .ok_or_else(|| "no reply from the switch".to_string())
    }
}

/// An OpenFlow connection, after the hellos.
pub struct Client {
    t: Box<dyn Transport>,
    pub version: u8,
    name: String,
}

fn version_names(bits: u32) -> String {
    let v: Vec<String> = (1..8)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| format!("0x{i:02x}"))
        .collect();
    v.join(", ")
}

impl Client {
    /// Says hello with the versions `allowed` and agrees on one.
    pub fn open(mut t: Box<dyn Transport>, allowed: u32, name: &str) -> Result<Client, String> {
        let ours = (0..8u8)
            .rev()
            .find(|v| allowed & (1 << v) != 0)
            .unwrap_or(OFP10);
        let hello = ofp::encode(ours, 1, &Msg::Hello { bitmap: allowed }).map_err(|e| e.0)?;
        t.send(&hello)?;
        let frame = t.recv()?;
        let h = msg::Header::parse(&frame).ok_or("malformed hello")?;
        let theirs = match msg::decode(&frame) {
            Ok(Frame {
                msg: Msg::Hello { bitmap },
                ..
            }) if bitmap != 0 => bitmap,
            Ok(Frame {
                msg: Msg::Hello { .. },
                ..
            }) => (1u32 << (h.version.min(30) as u32 + 1)) - 2,
            _ => return Err(format!("{name}: OpenFlow handshake failed")),
        };
        let version = ofp::negotiate(allowed, theirs).ok_or_else(|| {
            let peer = (0..32).rev().find(|v| theirs & (1 << v) != 0).unwrap_or(0);
            format!(
                "{name}: version negotiation failed (we support version {}, peer supports version 0x{peer:02x})",
                version_names(allowed)
            )
        })?;
        Ok(Client {
            t,
            version,
            name: name.to_string(),
        })
    }

    fn send(&mut self, xid: u32, m: &Msg) -> Result<(), String> {
        let frame =
            ofp::encode(self.version, xid, m).map_err(|e| format!("cannot send: {}", e.0))?;
        self.t.send(&frame)
    }

    /// The next message that is not an echo or an asynchronous message.
    fn recv(&mut self) -> Result<Frame, String> {
        loop {
            let frame = self.t.recv()?;
            let f = msg::decode(&frame)
                .map_err(|e| format!("{}: received bad reply ({e})", self.name))?;
            match &f.msg {
                Msg::EchoRequest(d) => {
                    let reply = Msg::EchoReply(d.clone());
                    self.send(f.xid, &reply)?;
                }
                Msg::PacketIn(_) | Msg::FlowRemoved(_) | Msg::PortStatus { .. } => {}
                _ => return Ok(f),
            }
        }
    }

    fn error_text(&self, f: &Frame, request: &str) -> String {
        let name = f.msg.error_name(f.version).unwrap_or_default();
        let mut s = format!(
            "OFPT_ERROR{} (xid=0x{:x}): {name}",
            version_label(f.version),
            f.xid
        );
        if !request.is_empty() {
            s.push_str(&format!(" (in reply to {request})"));
        }
        s
    }

    /// Sends a request and returns its one reply.
    pub fn transact(&mut self, xid: u32, m: &Msg) -> Result<Frame, String> {
        self.send(xid, m)?;
        loop {
            let f = self.recv()?;
            if f.xid != xid {
                continue;
            }
            if matches!(f.msg, Msg::Error { .. }) {
                return Err(self.error_text(&f, ""));
            }
            return Ok(f);
        }
    }

    /// A statistics request: every part of its reply, merged.
    pub fn stats(&mut self, xid: u32, body: StatsRequest) -> Result<StatsReply, String> {
        self.send(xid, &Msg::StatsRequest { flags: 0, body })?;
        let mut merged: Option<StatsReply> = None;
        loop {
            let f = self.recv()?;
            if f.xid != xid {
                continue;
            }
            let (flags, body) = match f.msg {
                Msg::StatsReply { flags, body } => (flags, body),
                Msg::Error { .. } => return Err(self.error_text(&f, "")),
                _ => return Err(format!("{}: unexpected reply", self.name)),
            };
            merged = Some(match (merged, body) {
                (None, b) => b,
                (
                    Some(StatsReply::Flow { nxm, mut flows }),
                    StatsReply::Flow { flows: more, .. },
                ) => {
                    flows.extend(more);
                    StatsReply::Flow { nxm, flows }
                }
                (Some(StatsReply::Port(mut a)), StatsReply::Port(b)) => {
                    a.extend(b);
                    StatsReply::Port(a)
                }
                (Some(StatsReply::Table(mut a)), StatsReply::Table(b)) => {
                    a.extend(b);
                    StatsReply::Table(a)
                }
                (Some(StatsReply::PortDesc(mut a)), StatsReply::PortDesc(b)) => {
                    a.extend(b);
                    StatsReply::PortDesc(a)
                }
                (Some(StatsReply::Group(mut a)), StatsReply::Group(b)) => {
                    a.extend(b);
                    StatsReply::Group(a)
                }
                (Some(StatsReply::GroupDesc(mut a)), StatsReply::GroupDesc(b)) => {
                    a.extend(b);
                    StatsReply::GroupDesc(a)
                }
                (Some(StatsReply::TableFeatures(mut a)), StatsReply::TableFeatures(b)) => {
                    a.extend(b);
                    StatsReply::TableFeatures(a)
                }
                (Some(a), _) => a,
            });
            if flags & 1 == 0 {
                return merged.ok_or_else(|| "empty reply".into());
            }
        }
    }

    /// Sends requests that have no reply, then a barrier; the first error
    /// any of them got is the result.
    pub fn send_all(&mut self, msgs: &[(u32, Msg, String)]) -> Result<(), String> {
        for (xid, m, _) in msgs {
            self.send(*xid, m)?;
        }
        let barrier_xid = msgs.last().map_or(2, |m| m.0 + 1);
        self.send(barrier_xid, &Msg::BarrierRequest)?;
        let mut first_err = None;
        loop {
            let f = self.recv()?;
            if matches!(f.msg, Msg::Error { .. }) {
                if first_err.is_none() {
                    let what = msgs
                        .iter()
                        .find(|m| m.0 == f.xid)
                        .map(|m| m.2.clone())
                        .unwrap_or_default();
                    first_err = Some(self.error_text(&f, &what));
                }
                continue;
            }
            if f.xid == barrier_xid && matches!(f.msg, Msg::BarrierReply) {
                return first_err.map_or(Ok(()), Err);
            }
        }
    }

    /// The bridge's ports (for port names).
    pub fn ports(&mut self) -> Result<Vec<PortDesc>, String> {
        if self.version == OFP10 {
            match self.transact(0x7f00, &Msg::FeaturesRequest)?.msg {
                Msg::FeaturesReply(f) => Ok(f.ports),
                _ => Err("unexpected reply".into()),
            }
        } else {
            match self.stats(0x7f00, StatsRequest::PortDesc)? {
                StatsReply::PortDesc(p) => Ok(p),
                _ => Err("unexpected reply".into()),
            }
        }
    }

    pub fn port_map(&mut self) -> Result<PortMap, String> {
        Ok(self
            .ports()?
            .iter()
            .map(|p| (p.name.clone(), p.port_no))
            .collect())
    }
}

/// Opens a connection with the versions a command should use.
pub type Connect<'a> = dyn FnMut(&str, u32) -> Result<Client, String> + 'a;

const V10: u32 = 1 << OFP10;
const V13: u32 = 1 << OFP13;

/// The versions a command uses: `-O` if given, else OpenFlow 1.0 (1.3 when
/// the command needs it).
fn versions(opts: &OfctlOptions, needs13: bool) -> u32 {
    opts.versions.unwrap_or(if needs13 { V13 } else { V10 })
}

fn needs_13(actions: &[OfAction]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            OfAction::GotoTable(_) | OfAction::ClearActions | OfAction::WriteActions(_)
        )
    })
}

/// Runs one command against `bridge`; `args` are the words after it.
pub fn run_with(
    connect: &mut Connect<'_>,
    cmd: &str,
    bridge: &str,
    args: &[String],
    opts: &OfctlOptions,
) -> Result<String, String> {
    let one = |what: &str| -> Result<&String, String> {
        args.first().ok_or_else(|| {
            format!("'{cmd}' command requires at least 2 arguments ({what} missing)")
        })
    };
    let err = |e: &dyn std::fmt::Display| e.to_string();
    match cmd {
        "show" => show(&mut connect(bridge, versions(opts, false))?),
        "add-flow" | "add-flows" | "mod-flows" | "del-flows" => {
            let command = match (cmd, opts.strict) {
                ("add-flow" | "add-flows", _) => FlowModCommand::Add,
                ("mod-flows", false) => FlowModCommand::Modify,
                ("mod-flows", true) => FlowModCommand::ModifyStrict,
                (_, false) => FlowModCommand::Delete,
                (_, true) => FlowModCommand::DeleteStrict,
            };
            // Port names in the flows need the switch's port table.
            let mut probe = connect(bridge, versions(opts, false))?;
            let ports = probe.port_map()?;
            let pn: Option<&dyn PortNames> = Some(&ports);
            let fms = if cmd == "del-flows" && args.is_empty() {
                vec![FlowMod::new(FlowModCommand::Delete)]
            } else if cmd == "add-flows" {
                parse_flow_mods(one("file")?, command, pn).map_err(|e| err(&e))?
            } else {
                vec![parse_flow_mod(one("flow")?, command, pn).map_err(|e| err(&e))?]
            };
            let want13 = fms.iter().any(|f| needs_13(&f.actions));
            let mut c = if want13 && opts.versions.is_none() {
                connect(bridge, V13)?
            } else {
                probe
            };
            send_flow_mods(&mut c, &fms)?;
            Ok(String::new())
        }
        "dump-flows" | "dump-aggregate" => {
            let mut c = connect(bridge, versions(opts, false))?;
            let ports = c.port_map()?;
            let filter = match args.first() {
                Some(f) => Some(parse_flow_filter(f, Some(&ports)).map_err(|e| err(&e))?),
                None => None,
            };
            let mut req = FlowStatsRequest::all(c.version == OFP10);
            if let Some(f) = filter {
                req.table_id = f.table_id;
                req.match_ = f.match_;
                req.cookie = f.cookie;
                req.cookie_mask = f.cookie_mask;
                req.out_port = f.out_port;
            }
            if cmd == "dump-aggregate" {
                return dump_aggregate(&mut c, req);
            }
            let names = opts.names.then_some(&ports as &dyn PortNames);
            dump_flows(&mut c, req, !opts.no_stats, names)
        }
        "dump-ports" => {
            let mut c = connect(bridge, versions(opts, false))?;
            let which = match args.first() {
                None => port::NONE,
                Some(w) => match w.parse::<u16>() {
                    Ok(n) => n,
                    Err(_) if w == "LOCAL" => port::LOCAL,
                    Err(_) => c
                        .port_map()?
                        .port_number(w)
                        .ok_or_else(|| format!("{w}: invalid or unknown port"))?,
                },
            };
            dump_ports(&mut c, which)
        }
        "dump-tables" => dump_tables(&mut connect(bridge, versions(opts, false))?),
        "replace-flows" => {
            let mut c = connect(bridge, versions(opts, false))?;
            let ports = c.port_map()?;
            let wanted = parse_flow_mods(one("file")?, FlowModCommand::Add, Some(&ports))
                .map_err(|e| err(&e))?;
            let current = flows_of(&mut c)?;
            let mods = replace_mods(&current, wanted);
            let mut c = if mods.iter().any(|f| needs_13(&f.actions)) && opts.versions.is_none() {
                connect(bridge, V13)?
            } else {
                c
            };
            send_flow_mods(&mut c, &mods)?;
            Ok(String::new())
        }
        "add-group" | "add-groups" | "mod-group" | "del-groups" => {
            let command = match cmd {
                "mod-group" => GroupModCommand::Modify,
                "del-groups" => GroupModCommand::Delete,
                _ => GroupModCommand::Add,
            };
            let mut c = connect(bridge, versions(opts, true))?;
            need_groups(&c)?;
            let ports = c.port_map()?;
            let text = match (cmd, args.first()) {
                ("del-groups", None) => String::new(),
                (_, Some(a)) => a.clone(),
                _ => return Err(format!("'{cmd}' command requires at least 2 arguments")),
            };
            let lines: Vec<&str> = if cmd == "add-groups" {
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .filter(|l| !l.is_empty())
                    .collect()
            } else {
                vec![text.as_str()]
            };
            let mut msgs = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                let g = parse_group_mod(l, command, Some(&ports)).map_err(|e| err(&e))?;
                msgs.push((
                    6 + i as u32,
                    Msg::GroupMod(GroupModMsg {
                        command: g.command,
                        kind: g.kind,
                        group_id: g.group_id,
                        buckets: g.buckets,
                    }),
                    format!("OFPT_GROUP_MOD: {l}"),
                ));
            }
            c.send_all(&msgs)?;
            Ok(String::new())
        }
        "dump-groups" | "dump-group-stats" => {
            let mut c = connect(bridge, versions(opts, true))?;
            need_groups(&c)?;
            let id = match args.first() {
                Some(a) => {
                    let a = a.strip_prefix("group_id=").unwrap_or(a);
                    a.parse::<u32>()
                        .map_err(|_| format!("{a}: invalid group id"))?
                }
                None => OFPG_ALL,
            };
            if cmd == "dump-groups" {
                dump_groups(&mut c, id)
            } else {
                dump_group_stats(&mut c, id)
            }
        }
        other => Err(format!("unknown command '{other}'; use --help for help")),
    }
}

fn need_groups(c: &Client) -> Result<(), String> {
    if c.version == OFP10 {
        return Err("groups need OpenFlow 1.1 or later ('-O OpenFlow13')".into());
    }
    Ok(())
}

fn send_flow_mods(c: &mut Client, fms: &[FlowMod]) -> Result<(), String> {
    let v10 = c.version == OFP10;
    let mut msgs = Vec::new();
    let mut xid = 6;
    let table_ext = v10 && fms.iter().any(|f| f.table_id.is_some());
    if table_ext {
        msgs.push((
            xid,
            Msg::NxFlowModTableId(true),
            "NXT_FLOW_MOD_TABLE_ID".to_string(),
        ));
        xid += 1;
    }
    for fm in fms {
        if v10 && needs_13(&fm.actions) {
            return Err(
                "none of the usable flow formats (OXM) is among the allowed flow formats (OpenFlow10,NXM)"
                    .into(),
            );
        }
        let mut m = FlowModMsg {
            fm: fm.clone(),
            buffer_id: NO_BUFFER,
            table_in_command: 0,
            nxm: v10,
        };
        if table_ext {
            // OpenFlow 1.0 carries the table in the command's high byte.
            m.table_in_command = fm.table_id.unwrap_or(if fm.command == FlowModCommand::Add {
                0
            } else {
                255
            });
        }
        if v10 {
            m.fm.table_id = None;
        }
        msgs.push((
            xid,
            Msg::FlowMod(m),
            format!("OFPT_FLOW_MOD: {}", format_flow_mod(fm)),
        ));
        xid += 1;
    }
    c.send_all(&msgs)
}

fn flows_of(c: &mut Client) -> Result<Vec<FlowStats>, String> {
    let req = FlowStatsRequest::all(c.version == OFP10);
    if c.version == OFP10 {
        c.send_all(&[(2, Msg::NxSetFlowFormat(2), String::new())])?;
    }
    match c.stats(4, StatsRequest::Flow(req))? {
        StatsReply::Flow { flows, .. } => Ok(flows),
        _ => Err("unexpected reply".into()),
    }
}

fn header(name: &str, version: u8, xid: u32) -> String {
    format!("{name}{} (xid=0x{xid:x})", version_label(version))
}

fn dump_flows(
    c: &mut Client,
    req: FlowStatsRequest,
    stats: bool,
    names: Option<&dyn PortNames>,
) -> Result<String, String> {
    let (xid, kind) = if c.version == OFP10 {
        c.send_all(&[(2, Msg::NxSetFlowFormat(2), String::new())])?;
        (4, "NXST_FLOW reply")
    } else {
        (2, "OFPST_FLOW reply")
    };
    let flows = match c.stats(xid, StatsRequest::Flow(req))? {
        StatsReply::Flow { flows, .. } => flows,
        _ => return Err("unexpected reply".into()),
    };
    let mut out = String::new();
    if stats {
        out += &header(kind, c.version, xid);
        out += ":\n";
    }
    for f in &flows {
        let mut line = format_flow_stats_with(f, stats, names);
        if c.version != OFP10 {
            // OpenFlow 1.1+ flow statistics have no idle or hard age.
            line = strip_ages(&line);
        }
        out += &line;
        out.push('\n');
    }
    Ok(out)
}

fn strip_ages(line: &str) -> String {
    let mut s = line.to_string();
    for key in ["idle_age=", "hard_age="] {
        if let Some(at) = s.find(key) {
            if let Some(end) = s[at..].find(", ") {
                s.replace_range(at..at + end + 2, "");
            }
        }
    }
    s
}

fn dump_aggregate(c: &mut Client, req: FlowStatsRequest) -> Result<String, String> {
    let (xid, kind) = if c.version == OFP10 {
        c.send_all(&[(2, Msg::NxSetFlowFormat(2), String::new())])?;
        (4, "NXST_AGGREGATE reply")
    } else {
        (2, "OFPST_AGGREGATE reply")
    };
    match c.stats(xid, StatsRequest::Aggregate(req))? {
        StatsReply::Aggregate {
            packets,
            bytes,
            flows,
            ..
        } => Ok(format!(
            "{}: packet_count={packets} byte_count={bytes} flow_count={flows}\n",
            header(kind, c.version, xid)
        )),
        _ => Err("unexpected reply".into()),
    }
}

fn port_label(n: u16, name: &str) -> String {
    if n == port::LOCAL {
        format!("LOCAL({name})")
    } else {
        format!("{n}({name})")
    }
}

/// Port descriptions as `ovs-ofctl show` prints them (sorted by number).
fn format_ports(ports: &[PortDesc]) -> String {
    let mut ports: Vec<&PortDesc> = ports.iter().collect();
    ports.sort_by_key(|p| p.port_no);
    let mut out = String::new();
    for p in ports {
        let m = p.hw_addr;
        let config = if p.config & pc::PORT_DOWN != 0 {
            "PORT_DOWN"
        } else {
            "0"
        };
        let state = if p.state & ps::LINK_DOWN != 0 {
            "LINK_DOWN"
        } else if p.state & ps::LIVE != 0 {
            "LIVE"
        } else {
            "0"
        };
        out += &format!(
            " {}: addr:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n     config:     {config}\n     state:      {state}\n     current:    10GB-FD COPPER\n     speed: {} Mbps now, {} Mbps max\n",
            port_label(p.port_no, &p.name),
            m[0], m[1], m[2], m[3], m[4], m[5],
            p.curr_speed / 1000,
            p.max_speed / 1000,
        );
    }
    out
}

fn show(c: &mut Client) -> Result<String, String> {
    let v = c.version;
    let f = match c.transact(2, &Msg::FeaturesRequest)? {
        Frame {
            msg: Msg::FeaturesReply(f),
            ..
        } => f,
        _ => return Err("unexpected reply".into()),
    };
    let mut out = format!(
        "{}: dpid:{:016x}\nn_tables:{}, n_buffers:{}\n",
        header("OFPT_FEATURES_REPLY", v, 2),
        f.datapath_id,
        f.n_tables,
        f.n_buffers
    );
    let caps10: [(u32, &str); 7] = [
        (1, "FLOW_STATS"),
        (2, "TABLE_STATS"),
        (4, "PORT_STATS"),
        (8, "STP"),
        (32, "IP_REASM"),
        (64, "QUEUE_STATS"),
        (128, "ARP_MATCH_IP"),
    ];
    let caps13: [(u32, &str); 7] = [
        (1, "FLOW_STATS"),
        (2, "TABLE_STATS"),
        (4, "PORT_STATS"),
        (8, "GROUP_STATS"),
        (32, "IP_REASM"),
        (64, "QUEUE_STATS"),
        (256, "PORT_BLOCKED"),
    ];
    let caps = if v == OFP10 { &caps10 } else { &caps13 };
    let names: Vec<&str> = caps
        .iter()
        .filter(|(b, _)| f.capabilities & b != 0)
        .map(|(_, n)| *n)
        .collect();
    out += &format!("capabilities: {}\n", names.join(" "));
    let config_xid = if v == OFP10 {
        let acts: [(u32, &str); 12] = [
            (1 << 0, "output"),
            (1 << 11, "enqueue"),
            (1 << 1, "set_vlan_vid"),
            (1 << 2, "set_vlan_pcp"),
            (1 << 3, "strip_vlan"),
            (1 << 4, "mod_dl_src"),
            (1 << 5, "mod_dl_dst"),
            (1 << 6, "mod_nw_src"),
            (1 << 7, "mod_nw_dst"),
            (1 << 8, "mod_nw_tos"),
            (1 << 9, "mod_tp_src"),
            (1 << 10, "mod_tp_dst"),
        ];
        let a: Vec<&str> = acts
            .iter()
            .filter(|(b, _)| f.actions & b != 0)
            .map(|(_, n)| *n)
            .collect();
        out += &format!("actions: {}\n", a.join(" "));
        out += &format_ports(&f.ports);
        4
    } else {
        let ports = match c.stats(3, StatsRequest::PortDesc)? {
            StatsReply::PortDesc(p) => p,
            _ => return Err("unexpected reply".into()),
        };
        out += &format!("{}:\n", header("OFPST_PORT_DESC reply", v, 3));
        out += &format_ports(&ports);
        5
    };
    match c.transact(config_xid, &Msg::GetConfigRequest)? {
        Frame {
            msg: Msg::GetConfigReply(cfg),
            ..
        } => {
            let frags = match cfg.flags & 3 {
                0 => "normal",
                1 => "drop",
                2 => "reassemble",
                _ => "nx-match",
            };
            out += &format!(
                "{}: frags={frags} miss_send_len={}\n",
                header("OFPT_GET_CONFIG_REPLY", v, config_xid),
                cfg.miss_send_len
            );
        }
        _ => return Err("unexpected reply".into()),
    }
    Ok(out)
}

fn dump_ports(c: &mut Client, which: u16) -> Result<String, String> {
    let v = c.version;
    let stats = match c.stats(2, StatsRequest::Port(which))? {
        StatsReply::Port(p) => p,
        _ => return Err("unexpected reply".into()),
    };
    let mut out = format!(
        "{}: {} ports\n",
        header("OFPST_PORT reply", v, 2),
        stats.len()
    );
    for s in stats {
        let label = if s.port_no == port::LOCAL {
            "LOCAL".to_string()
        } else {
            format!("{:>2}", s.port_no)
        };
        out += &format!(
            "  port {label}: rx pkts={}, bytes={}, drop={}, errs={}, frame={}, over={}, crc={}\n           tx pkts={}, bytes={}, drop={}, errs={}, coll={}\n",
            s.rx_packets, s.rx_bytes, s.rx_dropped, s.rx_errors, s.rx_frame_err, s.rx_over_err, s.rx_crc_err,
            s.tx_packets, s.tx_bytes, s.tx_dropped, s.tx_errors, s.collisions
        );
        if v != OFP10 {
            out += &format!(
                "           duration={}\n",
                format_duration(s.duration_sec, s.duration_nsec)
            );
        }
    }
    Ok(out)
}

fn dump_tables(c: &mut Client) -> Result<String, String> {
    let v = c.version;
    let tables = match c.stats(2, StatsRequest::Table)? {
        StatsReply::Table(t) => t,
        _ => return Err("unexpected reply".into()),
    };
    let counts: Vec<u32> = tables.iter().map(|t| t.active).collect();
    let mut out = format!("{}:\n", header("OFPST_TABLE reply", v, 2));
    let n = counts.len();
    let mut i = 0;
    while i < n {
        // Runs of identical empty tables print as OVS does: "tables A...B: ditto".
        let j = (i + 1..n).find(|&j| counts[j] != 0).unwrap_or(n);
        let t = &tables[i];
        out += &format!(
            "  table {i}:\n    active={}, lookup={}, matched={}\n",
            t.active, t.lookup, t.matched
        );
        if v == OFP10 {
            if i == 0 {
                out += &format!(
                    "    max_entries={}\n    matching:\n      exact match or wildcard: in_port eth_{{src,dst,type}} vlan_{{vid,pcp}} ip_{{src,dst}} nw_{{proto,tos}} tcp_{{src,dst}}\n",
                    t.max_entries
                );
            } else {
                out += "    (same features)\n";
            }
        }
        out.push('\n');
        if counts[i] == 0 && j > i + 2 {
            out += &format!("  tables {}...{}: ditto\n", i + 1, j - 1);
            i = j;
        } else {
            i += 1;
        }
    }
    Ok(out)
}

fn dump_groups(c: &mut Client, id: u32) -> Result<String, String> {
    let v = c.version;
    let groups = match c.stats(2, StatsRequest::GroupDesc)? {
        StatsReply::GroupDesc(g) => g,
        _ => return Err("unexpected reply".into()),
    };
    let mut out = format!("{}:\n", header("OFPST_GROUP_DESC reply", v, 2));
    for g in groups.iter().filter(|g| id == OFPG_ALL || g.group_id == id) {
        out += &format!(" {}\n", format_group(g.group_id, g.kind, &g.buckets, None));
    }
    Ok(out)
}

fn dump_group_stats(c: &mut Client, id: u32) -> Result<String, String> {
    let v = c.version;
    let groups = match c.stats(2, StatsRequest::Group(id))? {
        StatsReply::Group(g) => g,
        _ => return Err("unexpected reply".into()),
    };
    let mut out = format!("{}:\n", header("OFPST_GROUP reply", v, 2));
    for g in groups {
        out += &format!(
            " group_id={},duration={},ref_count={},packet_count={},byte_count={}",
            g.group_id,
            format_duration(g.duration_sec, g.duration_nsec),
            g.ref_count,
            g.packet_count,
            g.byte_count
        );
        for (i, (p, b)) in g.buckets.iter().enumerate() {
            out += &format!(",bucket{i}:packet_count={p},byte_count={b}");
        }
        out.push('\n');
    }
    Ok(out)
}

/// A rule's identity for replace/diff: table, priority and match.
fn identity(fm: &FlowMod) -> (u8, u16, Vec<u8>) {
    let m = &fm.match_;
    let mut k = m.flow.b.to_vec();
    k.extend_from_slice(&m.mask.b);
    (fm.table_id.unwrap_or(0), fm.priority, k)
}

fn replace_mods(current: &[FlowStats], wanted: Vec<FlowMod>) -> Vec<FlowMod> {
    let cur: BTreeMap<_, FlowMod> = current
        .iter()
        .map(|f| {
            let fm = flow_stats_to_flow_mod(f);
            (identity(&fm), fm)
        })
        .collect();
    let want: BTreeMap<_, FlowMod> = wanted.into_iter().map(|fm| (identity(&fm), fm)).collect();
    let mut mods = Vec::new();
    for (k, fm) in &cur {
        if !want.contains_key(k) {
            let mut del = fm.clone();
            del.command = FlowModCommand::DeleteStrict;
            del.table_id = Some(fm.table_id.unwrap_or(0));
            mods.push(del);
        }
    }
    for (k, fm) in want {
        let same = cur
            .get(&k)
            .is_some_and(|c| c.actions == fm.actions && c.cookie == fm.cookie);
        if !same {
            mods.push(fm);
        }
    }
    mods
}

/// `diff-flows`: `-` lines for flows only on the left (or changed), `+`
/// for flows only on the right (or changed).
pub fn diff_flows(left: &[FlowMod], right: &[FlowMod]) -> String {
    let l: BTreeMap<_, &FlowMod> = left.iter().map(|f| (identity(f), f)).collect();
    let r: BTreeMap<_, &FlowMod> = right.iter().map(|f| (identity(f), f)).collect();
    let mut out = String::new();
    for (k, f) in &l {
        match r.get(k) {
            Some(g) if g.actions == f.actions && g.cookie == f.cookie => {}
            _ => out += &format!("-{}\n", format_flow_mod_line(f)),
        }
        if let Some(g) = r.get(k) {
            if g.actions != f.actions || g.cookie != f.cookie {
                out += &format!("+{}\n", format_flow_mod_line(g));
            }
        }
    }
    for (k, g) in &r {
        if !l.contains_key(k) {
            out += &format!("+{}\n", format_flow_mod_line(g));
        }
    }
    out
}

/// One side of `diff-flows`.
pub enum DiffSource {
    /// A bridge's flows.
    Bridge(String),
    /// A flow file's contents, with its name for errors.
    Text { text: String, name: String },
}

/// `diff-flows`: the flows of each source compared.
pub fn diff_sources(
    connect: &mut Connect<'_>,
    sources: &[DiffSource],
    opts: &OfctlOptions,
) -> Result<String, String> {
    let mut ports: Option<PortMap> = None;
    let mut sides = Vec::new();
    for s in sources {
        match s {
            DiffSource::Bridge(b) => {
                let mut c = connect(b, versions(opts, false))?;
                if ports.is_none() {
                    ports = Some(c.port_map()?);
                }
                let flows = flows_of(&mut c)?;
                sides.push(flows.iter().map(flow_stats_to_flow_mod).collect::<Vec<_>>());
            }
            DiffSource::Text { .. } => sides.push(Vec::new()),
        }
    }
    for (i, s) in sources.iter().enumerate() {
        if let DiffSource::Text { text, name } = s {
            let pn = ports.as_ref().map(|p| p as &dyn PortNames);
            sides[i] = parse_flow_mods(text, FlowModCommand::Add, pn).map_err(|e| {
                let e = e.to_string();
                match e.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
                    Some((n, msg)) => format!("{name}:{n}: {msg}"),
                    None => e,
                }
            })?;
        }
    }
    let [left, right] = sides.as_slice() else {
        return Err("'diff-flows' command requires 2 arguments".into());
    };
    Ok(diff_flows(left, right))
}

/// Runs one fvs-ofctl command in-process against `d` (over an OpenFlow
/// session without a socket); `args` are the words after the bridge.
pub fn run(
    d: &Arc<Daemon>,
    cmd: &str,
    bridge: &str,
    args: &[String],
    opts: &OfctlOptions,
) -> Result<String, String> {
    let mut connect = |b: &str, allowed: u32| -> Result<Client, String> {
        Client::open(Box::new(LocalTransport::new(d, b)?), allowed, b)
    };
    run_with(&mut connect, cmd, bridge, args, opts)
}

/// The `ofctl` control-socket method (kept for scripts that used it):
/// `[command, bridge, [flags…], [args…]]`; for `diff-flows`, the args are
/// sources: `{"bridge": B}` or `{"text": T, "name": N}`.
pub fn handle(d: &Arc<Daemon>, params: &[serde_json::Value]) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    let bad = || "malformed ofctl request".to_string();
    let [Value::String(cmd), Value::String(bridge), Value::Array(flags), Value::Array(args)] =
        params
    else {
        return Err(bad());
    };
    let strings = |v: &[Value]| -> Result<Vec<String>, String> {
        v.iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
            .collect()
    };
    let opts = OfctlOptions::parse(&strings(flags)?);
    if cmd == "diff-flows" {
        let mut sources = Vec::new();
        for s in args {
            if let Some(b) = s.get("bridge").and_then(|b| b.as_str()) {
                sources.push(DiffSource::Bridge(b.to_string()));
            } else if let Some(t) = s.get("text").and_then(|t| t.as_str()) {
                sources.push(DiffSource::Text {
                    text: t.to_string(),
                    name: s
                        .get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("-")
                        .to_string(),
                });
            } else {
                return Err(bad());
            }
        }
        let mut connect = |b: &str, allowed: u32| -> Result<Client, String> {
            Client::open(Box::new(LocalTransport::new(d, b)?), allowed, b)
        };
        return diff_sources(&mut connect, &sources, &opts).map(Value::String);
    }
    run(d, cmd, bridge, &strings(args)?, &opts).map(Value::String)
}
