//! One OpenFlow connection's protocol, without I/O: version negotiation,
//! requests carried out against an [`Ofproto`] (and the [`SwitchView`] for
//! what lives outside it: ports, packet output), replies, and the
//! asynchronous messages (packet-in, flow-removed, port-status) this
//! connection's role and configuration ask for.
//!
//! The I/O layer frames the byte stream with [`msg::frame_len`], hands each
//! message to [`Session::receive`], and sends what [`Session::take_output`]
//! returns.

use std::time::Instant;

use super::error::OfpErr;
use super::msg::{
    self, role, AsyncConfig, DescStats, Features, FlowRemovedMsg, FlowStatsRequest, GroupDesc,
    GroupFeatures, GroupStats, Msg, PacketInMsg, PortDesc, PortModMsg, PortStats, StatsReply,
    StatsRequest, SwitchConfig, TableFeatures, TableStats, NO_BUFFER, OFPG_ALL,
};
use super::{negotiate, OFP10, OFP13};
use crate::actions::{port, OfAction};
use crate::fields::FieldId;
use crate::flow::Match;
use crate::flow_mod::FlowModCommand;
use crate::group::{GroupMod, GroupModError, MAX_GROUPS};
use crate::ofproto::{FlowModError, Ofproto, OfprotoError, PacketIn, RemovedReason, RemovedRule};

/// Tables fvs reports (0–253, as OVS).
pub const N_TABLES_REPORTED: u8 = 254;

/// What kind of connection this is (OVS's `ofconn_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnKind {
    /// A controller (from the Controller table): receives asynchronous
    /// messages by default.
    Primary,
    /// The management socket (`ovs-ofctl`): none unless it asks for them
    /// with a nonzero `miss_send_len`.
    Service,
}

/// A port as the switch describes it, with its counters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PortInfo {
    pub desc: PortDesc,
    pub stats: PortStats,
}

/// What the session needs from the switch beyond the OpenFlow tables.
pub trait SwitchView {
    fn datapath_id(&self, bridge: &str) -> u64;
    /// Every port of the bridge (the LOCAL port included).
    fn ports(&self, bridge: &str) -> Vec<PortInfo>;
    fn port_mod(&self, bridge: &str, pm: &PortModMsg) -> Result<(), OfpErr>;
    /// Sends `data` through `actions` as if it came in on `in_port`.
    fn packet_out(
        &self,
        bridge: &str,
        in_port: u16,
        actions: &[OfAction],
        data: &[u8],
    ) -> Result<(), OfpErr>;
    fn desc(&self, bridge: &str) -> DescStats;
}

/// What a received message did that concerns other connections.
#[derive(Debug, Default)]
pub struct SessionEvents {
    /// Rules removed by deletes (flow-removed goes to every connection).
    pub removed: Vec<RemovedRule>,
    /// This connection became master: the others that were become slaves.
    pub became_master: bool,
}

/// State every connection of a bridge shares.
#[derive(Debug, Default)]
pub struct BridgeShared {
    /// The last master/slave role request's generation id.
    pub generation_id: Option<u64>,
}

pub struct Session {
    bridge: String,
    allowed: u32,
    kind: ConnKind,
    version: Option<u8>,
    closed: bool,
    out: Vec<Vec<u8>>,
    config: SwitchConfig,
    role: u32,
    async_cfg: AsyncConfig,
    /// NXT_SET_FLOW_FORMAT chose NXM (OpenFlow 1.0).
    nxm: bool,
    /// NXT_FLOW_MOD_TABLE_ID is on.
    table_id_ext: bool,
    controller_id: u16,
    next_xid: u32,
    /// Messages received (for the Controller table's status).
    pub received: u64,
    /// The datapath version of flow-mods applied and not yet waited for.
    unsynced: u64,
}

fn highest(bits: u32) -> u8 {
    (0..32u8)
        .rev()
        .find(|v| bits & (1 << v) != 0)
        .unwrap_or(OFP10)
}

impl Session {
    /// A new connection to `bridge` allowing the versions in `allowed`
    /// (a bitmap); its hello is queued.
    pub fn new(bridge: &str, allowed: u32, kind: ConnKind) -> Session {
        let allowed = if allowed == 0 {
            super::SUPPORTED
        } else {
            allowed
        };
        let mut s = Session {
            bridge: bridge.to_string(),
            allowed,
            kind,
            version: None,
            closed: false,
            out: Vec::new(),
            config: SwitchConfig {
                flags: 0,
                miss_send_len: if kind == ConnKind::Primary { 128 } else { 0 },
            },
            role: role::EQUAL,
            async_cfg: AsyncConfig::default_13(),
            nxm: false,
            table_id_ext: false,
            controller_id: 0,
            next_xid: 1,
            received: 0,
            unsynced: 0,
        };
        let v = highest(allowed);
        s.send(v, 0, &Msg::Hello { bitmap: allowed });
        s
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The negotiated version, once the hellos crossed.
    pub fn version(&self) -> Option<u8> {
        self.version
    }

    /// Whether the connection must be closed (after sending what is queued).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The role (`role::EQUAL`, `MASTER`, `SLAVE`).
    pub fn role(&self) -> u32 {
        self.role
    }

    /// The Controller table's name of the role.
    pub fn role_name(&self) -> &'static str {
        match self.role {
            role::MASTER => "master",
            role::SLAVE => "slave",
            _ => "other",
        }
    }

    pub fn kind(&self) -> ConnKind {
        self.kind
    }

    /// Whether an OpenFlow 1.0 controller (which expects table misses) is here.
    pub fn wants_table_miss(&self) -> bool {
        self.version == Some(OFP10) && self.kind == ConnKind::Primary
    }

    /// Frames to send, in order.
    pub fn take_output(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, version: u8, xid: u32, m: &Msg) {
        match msg::encode_all(version, xid, m) {
            Ok(frames) => self.out.extend(frames),
            Err(_) => {
                // Nothing fvs builds is unencodable; never send half a message.
            }
        }
    }

    fn reply(&mut self, xid: u32, m: &Msg) {
        let v = self.version.unwrap_or(OFP10);
        self.send(v, xid, m);
    }

    fn error(&mut self, xid: u32, e: OfpErr, request: &[u8]) {
        let v = self.version.unwrap_or(OFP10);
        self.send(v, xid, &Msg::error(v, e, request));
    }

    /// Queues an echo request (the inactivity probe).
    pub fn echo_request(&mut self) {
        if let Some(v) = self.version {
            let xid = self.alloc_xid();
            self.send(v, xid, &Msg::EchoRequest(Vec::new()));
        }
    }

    fn alloc_xid(&mut self) -> u32 {
        self.next_xid = self.next_xid.wrapping_add(1);
        self.next_xid
    }

    /// Another connection became master: this one, if master, is a slave now.
    pub fn demote(&mut self) {
        if self.role == role::MASTER {
            self.role = role::SLAVE;
        }
    }

    /// Waits until the datapath applies the flow-mods this connection has
    /// made so far. A run of flow-mods is waited for once, before the next
    /// message of another kind (a barrier, a request, a packet-out) and at
    /// the end of each round of input ([`Session::receive`] does the former,
    /// the connection's owner the latter).
    pub fn sync(&mut self, of: &Ofproto) {
        if self.unsynced != 0 {
            of.wait_version(self.unsynced);
            self.unsynced = 0;
        }
    }

    /// Handles one whole message.
    pub fn receive(
        &mut self,
        of: &Ofproto,
        sw: &dyn SwitchView,
        shared: &mut BridgeShared,
        frame: &[u8],
    ) -> SessionEvents {
        let mut ev = SessionEvents::default();
        if self.closed {
            return ev;
        }
        self.received += 1;
        let Some(h) = msg::Header::parse(frame) else {
            return ev;
        };
        let Some(version) = self.version else {
            self.hello(frame, h);
            return ev;
        };
        if h.version != version {
            if h.msg_type == 0 {
                return ev;
            }
            self.error(h.xid, OfpErr::BadVersion, frame);
            return ev;
        }
        let f = match msg::decode(frame) {
            Ok(f) => f,
            Err(e) => {
                self.error(h.xid, e, frame);
                return ev;
            }
        };
        if !matches!(f.msg, Msg::FlowMod(_)) {
            self.sync(of);
        }
        if let Err(e) = self.dispatch(of, sw, shared, f.xid, f.msg, frame, &mut ev) {
            self.error(h.xid, e, frame);
        }
        ev
    }

    fn hello(&mut self, frame: &[u8], h: msg::Header) {
        if h.msg_type != 0 {
            // The first message must be a hello.
            let v = h.version.clamp(OFP10, highest(self.allowed));
            self.send(v, h.xid, &Msg::error(v, OfpErr::HelloIncompatible, frame));
            self.closed = true;
            return;
        }
        let bitmap = match msg::decode(frame) {
            Ok(msg::Frame {
                msg: Msg::Hello { bitmap },
                ..
            }) => bitmap,
            _ => 0,
        };
        let theirs = if bitmap != 0 {
            bitmap
        } else {
            // No bitmap: every version up to the header's.
            (1u32 << (h.version.min(31) as u32 + 1)) - 2
        };
        let chosen = if bitmap != 0 {
            negotiate(self.allowed, theirs)
        } else {
            let v = h.version.min(highest(self.allowed));
            (self.allowed & (1 << v) != 0).then_some(v)
        };
        match chosen {
            Some(v) => self.version = Some(v),
            None => {
                let v = h.version.clamp(OFP10, highest(self.allowed));
                let text = format!(
                    "We support {}, you support {}, no common versions",
                    version_list(self.allowed),
                    version_list(theirs)
                );
                self.send(
                    v,
                    h.xid,
                    &Msg::Error {
                        err_type: 0,
                        code: 0,
                        data: text.into_bytes(),
                    },
                );
                self.closed = true;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        of: &Ofproto,
        sw: &dyn SwitchView,
        shared: &mut BridgeShared,
        xid: u32,
        m: Msg,
        frame: &[u8],
        ev: &mut SessionEvents,
    ) -> Result<(), OfpErr> {
        let v = self.version.unwrap_or(OFP10);
        let slave = self.role == role::SLAVE;
        match m {
            Msg::Hello { .. } | Msg::EchoReply(_) | Msg::Error { .. } => {}
            Msg::EchoRequest(d) => self.reply(xid, &Msg::EchoReply(d)),
            Msg::FeaturesRequest => {
                let mut f = Features {
                    datapath_id: sw.datapath_id(&self.bridge),
                    n_buffers: 0,
                    n_tables: N_TABLES_REPORTED,
                    capabilities: if v == OFP10 { 0xc7 } else { 0x4f },
                    actions: if v == OFP10 { 0xfff } else { 0 },
                    ports: Vec::new(),
                };
                if v == OFP10 {
                    f.ports = sw.ports(&self.bridge).into_iter().map(|p| p.desc).collect();
                }
                self.reply(xid, &Msg::FeaturesReply(f));
            }
            Msg::GetConfigRequest => {
                let c = self.config;
                self.reply(xid, &Msg::GetConfigReply(c));
            }
            Msg::SetConfig(c) => {
                if c.flags & !0x3 != 0 || c.flags & 0x3 == 0x3 {
                    return Err(OfpErr::ScBadFlags);
                }
                if c.flags != 0 && v == OFP13 {
                    // Only "normal" fragment handling.
                    return Err(OfpErr::ScBadFlags);
                }
                self.config = SwitchConfig {
                    flags: if v == OFP10 { 0 } else { c.flags },
                    miss_send_len: c.miss_send_len,
                };
            }
            Msg::PacketOut(p) => {
                if slave {
                    return Err(OfpErr::IsSlave);
                }
                if p.buffer_id != NO_BUFFER {
                    return Err(OfpErr::BufferUnknown);
                }
                let ok_in = p.in_port < port::MAX
                    || matches!(p.in_port, port::LOCAL | port::CONTROLLER | port::NONE);
                if !ok_in {
                    return Err(OfpErr::BrcBadPort);
                }
                if p.actions.iter().any(|a| {
                    matches!(
                        a,
                        OfAction::GotoTable(_)
                            | OfAction::WriteMetadata { .. }
                            | OfAction::ClearActions
                            | OfAction::WriteActions(_)
                    )
                }) {
                    return Err(OfpErr::BacBadType);
                }
                let groups = of.groups(&self.bridge).unwrap_or_default();
                for a in &p.actions {
                    if let OfAction::Group(g) = a {
                        if !groups.iter().any(|e| e.id == *g) {
                            return Err(OfpErr::BadOutGroup);
                        }
                    }
                }
                sw.packet_out(&self.bridge, p.in_port, &p.actions, &p.data)?;
            }
            Msg::FlowMod(mut f) => {
                if slave {
                    return Err(OfpErr::IsSlave);
                }
                if v == OFP10 && f.table_in_command != 0 {
                    if !self.table_id_ext {
                        return Err(OfpErr::BadCommand);
                    }
                    f.fm.table_id = (f.table_in_command != 255).then_some(f.table_in_command);
                }
                let fm = &f.fm;
                if let Some(t) = fm.table_id {
                    if t as usize >= crate::bridge::N_TABLES {
                        return Err(if v == OFP10 {
                            OfpErr::NxBadTableId
                        } else {
                            OfpErr::FmBadTableId
                        });
                    }
                }
                if matches!(
                    fm.command,
                    FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
                ) {
                    check_consistency(fm)?;
                }
                let out = of
                    .flow_mods_unsynced(&self.bridge, std::slice::from_ref(fm))
                    .map_err(|(e, version)| {
                        self.unsynced = self.unsynced.max(version);
                        flow_mod_error(e, v)
                    })?;
                self.unsynced = self.unsynced.max(out.version);
                let id = of.bridge_id(&self.bridge).unwrap_or(0);
                ev.removed
                    .extend(out.removed.into_iter().map(|rule| RemovedRule {
                        bridge: id,
                        rule,
                        reason: RemovedReason::Delete,
                    }));
                if f.buffer_id != NO_BUFFER {
                    return Err(OfpErr::BufferUnknown);
                }
            }
            Msg::GroupMod(g) => {
                if slave {
                    return Err(OfpErr::IsSlave);
                }
                let gm = GroupMod {
                    command: g.command,
                    kind: g.kind,
                    group_id: g.group_id,
                    buckets: g.buckets,
                };
                let removed = of.group_mod(&self.bridge, &gm).map_err(|e| match e {
                    OfprotoError::GroupMod { error, .. } => match error {
                        GroupModError::Exists(_) => OfpErr::GroupExists,
                        GroupModError::Unknown(id) if id == gm.group_id => OfpErr::UnknownGroup,
                        GroupModError::Unknown(_) => OfpErr::BadOutGroup,
                        GroupModError::Invalid(_) => OfpErr::InvalidGroup,
                        GroupModError::BadBucket(..) => OfpErr::BadBucket,
                        GroupModError::BadWatch(_) => OfpErr::BadWatch,
                        GroupModError::Loop(_) => OfpErr::GroupLoop,
                        GroupModError::Chained(..) => OfpErr::ChainedGroup,
                        GroupModError::Full => OfpErr::OutOfGroups,
                    },
                    _ => OfpErr::GroupEperm,
                })?;
                ev.removed.extend(removed);
            }
            Msg::PortMod(pm) => {
                if slave {
                    return Err(OfpErr::IsSlave);
                }
                sw.port_mod(&self.bridge, &pm)?;
            }
            Msg::TableMod { table_id, config } => {
                if slave {
                    return Err(OfpErr::IsSlave);
                }
                if table_id != 255 && table_id >= N_TABLES_REPORTED {
                    return Err(OfpErr::TmBadTable);
                }
                if config & !0x3 != 0 {
                    return Err(OfpErr::TmBadConfig);
                }
            }
            Msg::StatsRequest { body, .. } => {
                let body = self.stats(of, sw, body)?;
                self.reply(xid, &Msg::StatsReply { flags: 0, body });
            }
            Msg::BarrierRequest => self.reply(xid, &Msg::BarrierReply),
            Msg::QueueGetConfigRequest { port: p } => {
                let known =
                    p == port::NONE || sw.ports(&self.bridge).iter().any(|i| i.desc.port_no == p);
                if !known {
                    return Err(OfpErr::QofBadPort);
                }
                self.reply(xid, &Msg::QueueGetConfigReply { port: p });
            }
            Msg::RoleRequest(r) => {
                if r.role > role::SLAVE {
                    return Err(OfpErr::BadRole);
                }
                if matches!(r.role, role::MASTER | role::SLAVE) {
                    if let Some(g) = shared.generation_id {
                        if (r.generation_id.wrapping_sub(g) as i64) < 0 {
                            return Err(OfpErr::RoleStale);
                        }
                    }
                    shared.generation_id = Some(r.generation_id);
                }
                if r.role != role::NOCHANGE {
                    if r.role == role::MASTER && self.role != role::MASTER {
                        ev.became_master = true;
                    }
                    self.role = r.role;
                }
                let reply = msg::RoleMsg {
                    role: self.role,
                    generation_id: shared.generation_id.unwrap_or(0),
                };
                self.reply(xid, &Msg::RoleReply(reply));
            }
            Msg::GetAsyncRequest => {
                let a = self.async_cfg;
                self.reply(xid, &Msg::GetAsyncReply(a));
            }
            Msg::SetAsync(a) => self.async_cfg = a,
            Msg::NxSetFlowFormat(f) => match (v, f) {
                (OFP10, 0) => self.nxm = false,
                (OFP10, 2) => self.nxm = true,
                (OFP10, _) => return Err(OfpErr::BrcEperm),
                _ => return Err(OfpErr::BadSubtype),
            },
            Msg::NxFlowModTableId(on) => self.table_id_ext = on,
            Msg::NxSetPacketInFormat(f) => {
                if f != 0 {
                    return Err(OfpErr::BrcEperm);
                }
            }
            Msg::NxSetControllerId(id) => self.controller_id = id,
            // Messages a switch sends, not receives.
            Msg::FeaturesReply(_)
            | Msg::GetConfigReply(_)
            | Msg::PacketIn(_)
            | Msg::FlowRemoved(_)
            | Msg::PortStatus { .. }
            | Msg::StatsReply { .. }
            | Msg::BarrierReply
            | Msg::QueueGetConfigReply { .. }
            | Msg::RoleReply(_)
            | Msg::GetAsyncReply(_) => return Err(OfpErr::BadType),
        }
        let _ = frame;
        Ok(())
    }

    fn stats(
        &mut self,
        of: &Ofproto,
        sw: &dyn SwitchView,
        body: StatsRequest,
    ) -> Result<StatsReply, OfpErr> {
        let br = self.bridge.clone();
        let v = self.version.unwrap_or(OFP10);
        let flows = |req: &FlowStatsRequest| -> Result<Vec<crate::flow_mod::FlowStats>, OfpErr> {
            if let Some(t) = req.table_id {
                if t as usize >= crate::bridge::N_TABLES {
                    return Err(OfpErr::BrcBadTableId);
                }
            }
            of.dump_flows(&br, Some(&req.to_flow_mod()))
                .map_err(|_| OfpErr::BrcEperm)
        };
        Ok(match body {
            StatsRequest::Desc => StatsReply::Desc(sw.desc(&br)),
            StatsRequest::Flow(req) => StatsReply::Flow {
                nxm: req.nxm,
                flows: flows(&req)?,
            },
            StatsRequest::Aggregate(req) => {
                let fl = flows(&req)?;
                StatsReply::Aggregate {
                    nxm: req.nxm,
                    packets: fl.iter().map(|f| f.packet_count).sum(),
                    bytes: fl.iter().map(|f| f.byte_count).sum(),
                    flows: fl.len() as u32,
                }
            }
            StatsRequest::Table => {
                let counts = of.table_counts(&br).map_err(|_| OfpErr::BrcEperm)?;
                StatsReply::Table(
                    counts
                        .iter()
                        .take(N_TABLES_REPORTED as usize)
                        .enumerate()
                        .map(|(i, &n)| TableStats {
                            table_id: i as u8,
                            name: String::new(),
                            wildcards: super::match10::FW_ALL,
                            max_entries: 1_000_000,
                            active: n as u32,
                            lookup: 0,
                            matched: 0,
                        })
                        .collect(),
                )
            }
            StatsRequest::Port(p) => StatsReply::Port(
                sw.ports(&br)
                    .into_iter()
                    .filter(|i| p == port::NONE || i.desc.port_no == p)
                    .map(|i| i.stats)
                    .collect(),
            ),
            StatsRequest::PortDesc => {
                StatsReply::PortDesc(sw.ports(&br).into_iter().map(|i| i.desc).collect())
            }
            StatsRequest::Queue { queue, .. } => {
                if queue != 0xffff_ffff {
                    return Err(OfpErr::QofBadQueue);
                }
                StatsReply::Queue
            }
            StatsRequest::Group(g) => {
                let all = of.groups(&br).map_err(|_| OfpErr::BrcEperm)?;
                StatsReply::Group(
                    all.into_iter()
                        .filter(|e| g == OFPG_ALL || e.id == g)
                        .map(|e| GroupStats {
                            group_id: e.id,
                            ref_count: e.ref_count,
                            packet_count: e.packets,
                            byte_count: e.bytes,
                            duration_sec: e.duration_sec,
                            duration_nsec: e.duration_nsec,
                            buckets: e.bucket_counts,
                        })
                        .collect(),
                )
            }
            StatsRequest::GroupDesc => StatsReply::GroupDesc(
                of.groups(&br)
                    .map_err(|_| OfpErr::BrcEperm)?
                    .into_iter()
                    .map(|e| GroupDesc {
                        kind: e.kind,
                        group_id: e.id,
                        buckets: e.buckets,
                    })
                    .collect(),
            ),
            StatsRequest::GroupFeatures => {
                let acts = 1 << 0 | 1 << 17 | 1 << 18 | 1 << 22 | 1 << 23 | 1 << 24 | 1 << 25;
                StatsReply::GroupFeatures(GroupFeatures {
                    types: 0xf,
                    capabilities: 0x7,
                    max_groups: [MAX_GROUPS as u32; 4],
                    actions: [acts; 4],
                })
            }
            StatsRequest::Meter => StatsReply::Meter,
            StatsRequest::MeterConfig => StatsReply::MeterConfig,
            StatsRequest::MeterFeatures => StatsReply::MeterFeatures,
            StatsRequest::TableFeatures(body) => {
                if !body.is_empty() {
                    // fvs's tables cannot be reconfigured.
                    return Err(OfpErr::TfEperm);
                }
                StatsReply::TableFeatures(table_features())
            }
        })
        .inspect(|_| {
            let _ = v;
        })
    }

    /// Queues a packet-in if this connection wants it.
    pub fn packet_in(&mut self, pi: &PacketIn) -> bool {
        let Some(v) = self.version else {
            return false;
        };
        if self.kind == ConnKind::Service && self.config.miss_send_len == 0 {
            return false;
        }
        let reason = match (pi.reason, v) {
            (crate::xlate::EXPLICIT_MISS, OFP10) => 1,
            (crate::xlate::EXPLICIT_MISS, _) => 0,
            (r, _) => r,
        };
        if v == OFP13 {
            let mask = self.async_cfg.packet_in[(self.role == role::SLAVE) as usize];
            if mask & (1 << reason) == 0 {
                return false;
            }
        }
        let mut data = pi.data.as_slice();
        if pi.reason == 0 && self.config.miss_send_len != 0xffff {
            data = &data[..data.len().min(self.config.miss_send_len as usize)];
        }
        let mut m = Match::catchall();
        m.set_exact(FieldId::InPort, pi.in_port as u128);
        let msg = Msg::PacketIn(PacketInMsg {
            buffer_id: NO_BUFFER,
            total_len: pi.total_len.min(u16::MAX as usize) as u16,
            reason,
            table_id: pi.table_id,
            cookie: if pi.reason == 0 { u64::MAX } else { pi.cookie },
            match_: m,
            in_port: pi.in_port,
            data: data.to_vec(),
        });
        self.send(v, 0, &msg);
        true
    }

    /// Queues a flow-removed if the rule asked for one and this connection
    /// wants it.
    pub fn flow_removed(&mut self, r: &RemovedRule) -> bool {
        let Some(v) = self.version else {
            return false;
        };
        if !r.rule.flags.send_flow_rem
            || (self.kind == ConnKind::Service && self.config.miss_send_len == 0)
        {
            return false;
        }
        let reason = match (r.reason, v) {
            (RemovedReason::IdleTimeout, _) => 0,
            (RemovedReason::HardTimeout, _) => 1,
            (RemovedReason::Delete, _) | (RemovedReason::GroupDelete, OFP10) => 2,
            (RemovedReason::GroupDelete, _) => 3,
        };
        if v == OFP13 {
            let mask = self.async_cfg.flow_removed[(self.role == role::SLAVE) as usize];
            if mask & (1 << reason) == 0 {
                return false;
            }
        }
        let d = Instant::now().saturating_duration_since(r.rule.created);
        let (packets, bytes) = r.rule.stats.get();
        let msg = Msg::FlowRemoved(FlowRemovedMsg {
            cookie: r.rule.cookie,
            priority: r.rule.priority,
            reason,
            table_id: r.rule.table_id,
            duration_sec: d.as_secs() as u32,
            duration_nsec: d.subsec_nanos(),
            idle_timeout: r.rule.idle_timeout,
            hard_timeout: r.rule.hard_timeout,
            packet_count: packets,
            byte_count: bytes,
            match_: r.rule.match_,
            nxm: self.nxm && v == OFP10,
        });
        self.send(v, 0, &msg);
        true
    }

    /// Queues a port-status (`reason`: 0 add, 1 delete, 2 modify).
    pub fn port_status(&mut self, reason: u8, desc: &PortDesc) -> bool {
        let Some(v) = self.version else {
            return false;
        };
        if self.kind == ConnKind::Service && self.config.miss_send_len == 0 {
            return false;
        }
        if v == OFP13 {
            let mask = self.async_cfg.port_status[(self.role == role::SLAVE) as usize];
            if mask & (1 << reason) == 0 {
                return false;
            }
        }
        self.send(
            v,
            0,
            &Msg::PortStatus {
                reason,
                desc: desc.clone(),
            },
        );
        true
    }
}

fn version_list(bits: u32) -> String {
    let v: Vec<String> = (1..32)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| format!("0x{i:02x}"))
        .collect();
    if v.is_empty() {
        "no versions".into()
    } else {
        format!("version {}", v.join(", "))
    }
}

fn flow_mod_error(e: OfprotoError, v: u8) -> OfpErr {
    match e {
        OfprotoError::FlowMod { error, .. } => match error {
            FlowModError::BadTable(_) => {
                if v == OFP10 {
                    OfpErr::NxBadTableId
                } else {
                    OfpErr::FmBadTableId
                }
            }
            FlowModError::BadGoto { .. } => OfpErr::BicBadTableId,
            FlowModError::Overlap(_) => OfpErr::Overlap,
            FlowModError::UnknownGroup(_) => OfpErr::BadOutGroup,
        },
        _ => OfpErr::FmEperm,
    }
}

/// OVS's `ofpacts_check()` on the switch side: actions must fit the match.
fn check_consistency(fm: &crate::flow_mod::FlowMod) -> Result<(), OfpErr> {
    match crate::syntax::check_actions(&fm.actions, &fm.match_, Some(fm.table_id.unwrap_or(0))) {
        Ok(()) => Ok(()),
        Err(e) => {
            let s = e.to_string();
            Err(if s.contains("OFPBAC_BAD_OUT_PORT") {
                OfpErr::BadOutPort
            } else if s.contains("OFPBIC_BAD_TABLE_ID") {
                OfpErr::BicBadTableId
            } else {
                OfpErr::MatchInconsistent
            })
        }
    }
}

/// OXM headers (no mask) of the fields fvs matches on, for table features.
fn match_headers() -> Vec<u32> {
    use super::nxm::{header, OXM_BASIC};
    let basic: &[(u8, u8)] = &[
        (0, 4),
        (2, 8),
        (3, 6),
        (4, 6),
        (5, 2),
        (6, 2),
        (7, 1),
        (8, 1),
        (9, 1),
        (10, 1),
        (11, 4),
        (12, 4),
        (13, 2),
        (14, 2),
        (15, 2),
        (16, 2),
        (17, 2),
        (18, 2),
        (19, 1),
        (20, 1),
        (21, 2),
        (22, 4),
        (23, 4),
        (24, 6),
        (25, 6),
        (26, 16),
        (27, 16),
        (28, 4),
        (29, 1),
        (30, 1),
        (31, 16),
        (32, 6),
        (33, 6),
        (38, 8),
    ];
    basic
        .iter()
        .map(|&(f, l)| header(OXM_BASIC, f, false, l))
        .collect()
}

/// The read-only table features fvs reports (OpenFlow 1.3).
pub fn table_features() -> Vec<TableFeatures> {
    let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    let insts: Vec<u8> = [1u16, 2, 3, 4, 5]
        .iter()
        .flat_map(|t| {
            let mut b = t.to_be_bytes().to_vec();
            b.extend_from_slice(&4u16.to_be_bytes());
            b
        })
        .collect();
    let acts: Vec<u8> = [0u16, 17, 18, 22, 23, 24, 25]
        .iter()
        .flat_map(|t| {
            let mut b = t.to_be_bytes().to_vec();
            b.extend_from_slice(&4u16.to_be_bytes());
            b
        })
        .collect();
    let fields = u32s(&match_headers());
    (0..N_TABLES_REPORTED)
        .map(|t| {
            let next: Vec<u8> = (t + 1..N_TABLES_REPORTED).collect();
            let mut props = vec![(0u16, insts.clone()), (2, next)];
            props.extend([
                (4, acts.clone()),
                (6, acts.clone()),
                (8, fields.clone()),
                (10, fields.clone()),
                (12, fields.clone()),
                (14, fields.clone()),
            ]);
            TableFeatures {
                table_id: t,
                name: format!("table{t}"),
                metadata_match: u64::MAX,
                metadata_write: u64::MAX,
                config: 0,
                max_entries: 1_000_000,
                props,
            }
        })
        .collect()
}
