//! OpenFlow messages of versions 1.0 (with the Nicira extensions
//! `ovs-ofctl` uses) and 1.3: one version-independent [`Msg`] per message,
//! decoded from and encoded to the wire with checked lengths.

use super::action::{
    decode_actions, decode_instructions, encode_actions, encode_instructions, Unencodable,
    NX_VENDOR,
};
use super::error::OfpErr;
use super::match10;
use super::nxm::{self, port_from_32, port_to_32};
use super::wire::{Reader, Writer};
use super::{OFP10, OFP13};
use crate::actions::{port, OfAction};
use crate::flow::Match;
use crate::flow_mod::{FlowMod, FlowModCommand, FlowModFlags, FlowStats};
use crate::group::{Bucket, GroupModCommand, GroupType};

/// Largest OpenFlow message.
pub const MAX_MSG: usize = 65535;
/// `buffer_id` meaning "not buffered".
pub const NO_BUFFER: u32 = 0xffff_ffff;
/// Group id meaning "all groups" (delete, stats) and "any" (filters).
pub const OFPG_ALL: u32 = 0xffff_fffc;
pub const OFPG_ANY: u32 = 0xffff_ffff;
pub const OFPG_MAX: u32 = 0xffff_ff00;

// Message types of OpenFlow 1.0 (T10) and 1.3 (T13) that differ.
mod t {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const VENDOR: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const T10_PORT_MOD: u8 = 15;
    pub const T10_STATS_REQUEST: u8 = 16;
    pub const T10_STATS_REPLY: u8 = 17;
    pub const T10_BARRIER_REQUEST: u8 = 18;
    pub const T10_BARRIER_REPLY: u8 = 19;
    pub const T10_QUEUE_GET_CONFIG_REQUEST: u8 = 20;
    pub const T10_QUEUE_GET_CONFIG_REPLY: u8 = 21;
    pub const T13_GROUP_MOD: u8 = 15;
    pub const T13_PORT_MOD: u8 = 16;
    pub const T13_TABLE_MOD: u8 = 17;
    pub const T13_MULTIPART_REQUEST: u8 = 18;
    pub const T13_MULTIPART_REPLY: u8 = 19;
    pub const T13_BARRIER_REQUEST: u8 = 20;
    pub const T13_BARRIER_REPLY: u8 = 21;
    pub const T13_QUEUE_GET_CONFIG_REQUEST: u8 = 22;
    pub const T13_QUEUE_GET_CONFIG_REPLY: u8 = 23;
    pub const T13_ROLE_REQUEST: u8 = 24;
    pub const T13_ROLE_REPLY: u8 = 25;
    pub const T13_GET_ASYNC_REQUEST: u8 = 26;
    pub const T13_GET_ASYNC_REPLY: u8 = 27;
    pub const T13_SET_ASYNC: u8 = 28;
    pub const T13_METER_MOD: u8 = 29;
}

// Nicira message subtypes.
const NXT_ROLE_REQUEST: u32 = 10;
const NXT_SET_FLOW_FORMAT: u32 = 12;
const NXT_FLOW_MOD: u32 = 13;
const NXT_FLOW_REMOVED: u32 = 14;
const NXT_FLOW_MOD_TABLE_ID: u32 = 15;
const NXT_SET_PACKET_IN_FORMAT: u32 = 16;
const NXT_SET_CONTROLLER_ID: u32 = 20;
// Nicira stats subtypes.
const NXST_FLOW: u32 = 0;
const NXST_AGGREGATE: u32 = 1;

/// Stats / multipart types.
pub mod st {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const GROUP: u16 = 6;
    pub const GROUP_DESC: u16 = 7;
    pub const GROUP_FEATURES: u16 = 8;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const VENDOR: u16 = 0xffff;
}

/// The fixed header of every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

impl Header {
    pub fn parse(b: &[u8]) -> Option<Header> {
        if b.len() < 8 {
            return None;
        }
        Some(Header {
            version: b[0],
            msg_type: b[1],
            length: u16::from_be_bytes([b[2], b[3]]),
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// How many bytes the next message in `buf` takes, once its header is in
/// (`Err` if the header's length is below 8: the stream cannot be framed).
pub fn frame_len(buf: &[u8]) -> Option<Result<usize, OfpErr>> {
    let h = Header::parse(buf)?;
    if (h.length as usize) < 8 {
        return Some(Err(OfpErr::BadLen));
    }
    Some(Ok(h.length as usize))
}

/// Features of a port (OpenFlow 1.3's bits; converted for 1.0).
pub mod pf {
    pub const F_10GB_FD: u32 = 1 << 6;
    pub const COPPER: u32 = 1 << 11;
}

/// Port `config` bits (OpenFlow 1.0's layout; 1.3 has a subset).
pub mod pc {
    pub const PORT_DOWN: u32 = 1 << 0;
    pub const NO_RECV: u32 = 1 << 2;
    pub const NO_FLOOD: u32 = 1 << 4;
    pub const NO_FWD: u32 = 1 << 5;
    pub const NO_PACKET_IN: u32 = 1 << 6;
}

/// Port `state` bits.
pub mod ps {
    pub const LINK_DOWN: u32 = 1 << 0;
    pub const LIVE: u32 = 1 << 2;
}

/// A port's description (`ofp_phy_port` / `ofp_port`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PortDesc {
    pub port_no: u16,
    pub hw_addr: [u8; 6],
    pub name: String,
    pub config: u32,
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    /// kbps.
    pub curr_speed: u32,
    pub max_speed: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Features {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub capabilities: u32,
    /// OpenFlow 1.0's supported-actions bitmap.
    pub actions: u32,
    /// OpenFlow 1.0 only (1.3 uses a port-description request).
    pub ports: Vec<PortDesc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SwitchConfig {
    pub flags: u16,
    pub miss_send_len: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketInMsg {
    pub buffer_id: u32,
    pub total_len: u16,
    /// The wire reason of the message's version.
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    /// OpenFlow 1.3: the match (in_port and pipeline fields).
    pub match_: Match,
    pub in_port: u16,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRemovedMsg {
    pub cookie: u64,
    pub priority: u16,
    pub reason: u8,
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
    /// Sent as Nicira's NXT_FLOW_REMOVED (an OpenFlow 1.0 NXM connection).
    pub nxm: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketOutMsg {
    pub buffer_id: u32,
    pub in_port: u16,
    pub actions: Vec<OfAction>,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowModMsg {
    pub fm: FlowMod,
    pub buffer_id: u32,
    /// OpenFlow 1.0: the command's high byte (a table id once
    /// NXT_FLOW_MOD_TABLE_ID is on).
    pub table_in_command: u8,
    /// Sent as Nicira's NXT_FLOW_MOD.
    pub nxm: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupModMsg {
    pub command: GroupModCommand,
    pub kind: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PortModMsg {
    pub port_no: u16,
    pub hw_addr: [u8; 6],
    pub config: u32,
    pub mask: u32,
    pub advertise: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RoleMsg {
    pub role: u32,
    pub generation_id: u64,
}

pub mod role {
    pub const NOCHANGE: u32 = 0;
    pub const EQUAL: u32 = 1;
    pub const MASTER: u32 = 2;
    pub const SLAVE: u32 = 3;
}

/// Which asynchronous messages a connection wants: [master/equal, slave]
/// bitmaps of reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AsyncConfig {
    pub packet_in: [u32; 2],
    pub port_status: [u32; 2],
    pub flow_removed: [u32; 2],
}

impl AsyncConfig {
    pub fn default_13() -> AsyncConfig {
        AsyncConfig {
            packet_in: [0x7, 0],
            port_status: [0x7, 0x7],
            flow_removed: [0xf, 0],
        }
    }
}

/// Which flows a flow or aggregate statistics request selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStatsRequest {
    pub table_id: Option<u8>,
    pub out_port: u16,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub match_: Match,
    /// Nicira's NXST_FLOW / NXST_AGGREGATE (OpenFlow 1.0).
    pub nxm: bool,
}

impl FlowStatsRequest {
    pub fn all(nxm: bool) -> FlowStatsRequest {
        FlowStatsRequest {
            table_id: None,
            out_port: port::NONE,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            match_: Match::catchall(),
            nxm,
        }
    }

    /// The loose-delete flow-mod that selects the same rules.
    pub fn to_flow_mod(&self) -> FlowMod {
        let mut fm = FlowMod::new(FlowModCommand::Delete);
        fm.table_id = self.table_id;
        fm.out_port = self.out_port;
        fm.out_group = if self.out_group == OFPG_ANY {
            u32::MAX
        } else {
            self.out_group
        };
        fm.cookie = self.cookie;
        fm.cookie_mask = self.cookie_mask;
        fm.match_ = self.match_;
        fm
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsRequest {
    Desc,
    Flow(FlowStatsRequest),
    Aggregate(FlowStatsRequest),
    Table,
    /// `port::NONE`: all ports.
    Port(u16),
    Queue {
        port: u16,
        queue: u32,
    },
    Group(u32),
    GroupDesc,
    GroupFeatures,
    Meter,
    MeterConfig,
    MeterFeatures,
    /// The body (empty: a read; fvs's tables are read-only).
    TableFeatures(Vec<u8>),
    PortDesc,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DescStats {
    pub mfr: String,
    pub hw: String,
    pub sw: String,
    pub serial: String,
    pub dp: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TableStats {
    pub table_id: u8,
    pub name: String,
    pub wildcards: u32,
    pub max_entries: u32,
    pub active: u32,
    pub lookup: u64,
    pub matched: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PortStats {
    pub port_no: u16,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub buckets: Vec<(u64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDesc {
    pub kind: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GroupFeatures {
    pub types: u32,
    pub capabilities: u32,
    pub max_groups: [u32; 4],
    pub actions: [u32; 4],
}

/// One table's features (OpenFlow 1.3, read-only).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TableFeatures {
    pub table_id: u8,
    pub name: String,
    pub metadata_match: u64,
    pub metadata_write: u64,
    pub config: u32,
    pub max_entries: u32,
    /// (property type, payload) pairs, payload unpadded.
    pub props: Vec<(u16, Vec<u8>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsReply {
    Desc(DescStats),
    Flow {
        nxm: bool,
        flows: Vec<FlowStats>,
    },
    Aggregate {
        nxm: bool,
        packets: u64,
        bytes: u64,
        flows: u32,
    },
    Table(Vec<TableStats>),
    Port(Vec<PortStats>),
    Queue,
    Group(Vec<GroupStats>),
    GroupDesc(Vec<GroupDesc>),
    GroupFeatures(GroupFeatures),
    Meter,
    MeterConfig,
    MeterFeatures,
    TableFeatures(Vec<TableFeatures>),
    PortDesc(Vec<PortDesc>),
}

/// An OpenFlow message, whatever the version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// `bitmap`: the versions in the hello's bitmap element (0: none).
    Hello {
        bitmap: u32,
    },
    Error {
        err_type: u16,
        code: u16,
        data: Vec<u8>,
    },
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    FeaturesRequest,
    FeaturesReply(Features),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketInMsg),
    FlowRemoved(FlowRemovedMsg),
    PortStatus {
        reason: u8,
        desc: PortDesc,
    },
    PacketOut(PacketOutMsg),
    FlowMod(FlowModMsg),
    GroupMod(GroupModMsg),
    PortMod(PortModMsg),
    TableMod {
        table_id: u8,
        config: u32,
    },
    StatsRequest {
        flags: u16,
        body: StatsRequest,
    },
    StatsReply {
        flags: u16,
        body: StatsReply,
    },
    BarrierRequest,
    BarrierReply,
    QueueGetConfigRequest {
        port: u16,
    },
    QueueGetConfigReply {
        port: u16,
    },
    RoleRequest(RoleMsg),
    RoleReply(RoleMsg),
    GetAsyncRequest,
    GetAsyncReply(AsyncConfig),
    SetAsync(AsyncConfig),
    /// NXT_SET_FLOW_FORMAT: 0 OpenFlow 1.0, 2 NXM.
    NxSetFlowFormat(u32),
    /// NXT_FLOW_MOD_TABLE_ID.
    NxFlowModTableId(bool),
    /// NXT_SET_PACKET_IN_FORMAT.
    NxSetPacketInFormat(u32),
    /// NXT_SET_CONTROLLER_ID.
    NxSetControllerId(u16),
}

impl Msg {
    /// The error message for `err` in reply to `request` (whose first 64
    /// bytes it carries).
    pub fn error(version: u8, err: OfpErr, request: &[u8]) -> Msg {
        let (err_type, code) = err.code(version);
        Msg::Error {
            err_type,
            code,
            data: request[..request.len().min(64)].to_vec(),
        }
    }

    /// The error this message carries, if fvs knows its name.
    pub fn error_name(&self, version: u8) -> Option<String> {
        match self {
            Msg::Error { err_type, code, .. } => Some(
                OfpErr::from_code(version, *err_type, *code)
                    .map(|e| e.name().to_string())
                    .unwrap_or_else(|| {
                        format!("{}({code})", OfpErr::type_name(version, *err_type))
                    }),
            ),
            _ => None,
        }
    }
}

/// A decoded message: its header and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub version: u8,
    pub xid: u32,
    pub msg: Msg,
}

fn bad_len<T>() -> Result<T, OfpErr> {
    Err(OfpErr::BadLen)
}

/// Requires the rest of `r` to be empty (fixed-size messages).
fn end(r: &Reader<'_>) -> Result<(), OfpErr> {
    if r.is_empty() {
        Ok(())
    } else {
        bad_len()
    }
}

/// Decodes one whole message (`buf` is exactly its bytes). The error is
/// the one to answer with.
pub fn decode(buf: &[u8]) -> Result<Frame, OfpErr> {
    let h = Header::parse(buf).ok_or(OfpErr::BadLen)?;
    if h.length as usize != buf.len() {
        return bad_len();
    }
    let version = h.version;
    let mut r = Reader::new(&buf[8..], OfpErr::BadLen);
    let msg = if h.msg_type == t::HELLO {
        decode_hello(&mut r)?
    } else if version == OFP10 {
        decode10(h.msg_type, &mut r)?
    } else if version == OFP13 {
        decode13(h.msg_type, &mut r)?
    } else {
        return Err(OfpErr::BadVersion);
    };
    Ok(Frame {
        version,
        xid: h.xid,
        msg,
    })
}

fn decode_hello(r: &mut Reader<'_>) -> Result<Msg, OfpErr> {
    let mut bitmap = 0;
    // Elements (OpenFlow 1.3.1+); junk after them is ignored, as the spec asks.
    while r.remaining() >= 4 {
        let et = r.u16()?;
        let elen = r.u16()? as usize;
        if elen < 4 || elen - 4 > r.remaining() {
            break;
        }
        let mut e = r.sub(elen - 4)?;
        if et == 1 && e.remaining() >= 4 {
            bitmap = e.u32()?;
        }
        let pad = (elen.div_ceil(8) * 8 - elen).min(r.remaining());
        r.skip(pad)?;
    }
    Ok(Msg::Hello { bitmap })
}

fn decode_error(r: &mut Reader<'_>) -> Result<Msg, OfpErr> {
    let err_type = r.u16()?;
    let code = r.u16()?;
    Ok(Msg::Error {
        err_type,
        code,
        data: r.rest().to_vec(),
    })
}

fn flow_command(c: u8) -> Result<FlowModCommand, OfpErr> {
    Ok(match c {
        0 => FlowModCommand::Add,
        1 => FlowModCommand::Modify,
        2 => FlowModCommand::ModifyStrict,
        3 => FlowModCommand::Delete,
        4 => FlowModCommand::DeleteStrict,
        _ => return Err(OfpErr::BadCommand),
    })
}

fn command_code(c: FlowModCommand) -> u8 {
    match c {
        FlowModCommand::Add => 0,
        FlowModCommand::Modify => 1,
        FlowModCommand::ModifyStrict => 2,
        FlowModCommand::Delete => 3,
        FlowModCommand::DeleteStrict => 4,
    }
}

fn flags10(raw: u16, command: FlowModCommand) -> Result<FlowModFlags, OfpErr> {
    if raw & !0x7 != 0 {
        return Err(OfpErr::BadFlags);
    }
    if raw & 4 != 0 {
        // OFPFF_EMERG: emergency flows are not supported.
        return Err(OfpErr::FmUnsupported);
    }
    Ok(FlowModFlags {
        send_flow_rem: raw & 1 != 0,
        check_overlap: raw & 2 != 0,
        // OpenFlow 1.0's add always resets counters (as OVS reads it).
        reset_counts: command == FlowModCommand::Add,
        ..FlowModFlags::default()
    })
}

fn flags13(raw: u16) -> Result<FlowModFlags, OfpErr> {
    if raw & !0x1f != 0 {
        return Err(OfpErr::BadFlags);
    }
    Ok(FlowModFlags {
        send_flow_rem: raw & 1 != 0,
        check_overlap: raw & 2 != 0,
        reset_counts: raw & 4 != 0,
        no_packet_counts: raw & 8 != 0,
        no_byte_counts: raw & 16 != 0,
    })
}

fn flags_code(f: &FlowModFlags, version: u8) -> u16 {
    let mut v = f.send_flow_rem as u16 | (f.check_overlap as u16) << 1;
    if version != OFP10 {
        v |= (f.reset_counts as u16) << 2
            | (f.no_packet_counts as u16) << 3
            | (f.no_byte_counts as u16) << 4;
    }
    v
}

/// The Nicira cookie match entry (NXM_NX_COOKIE), which NXM flow-mods and
/// flow statistics requests carry with the match.
const NXM_NX_COOKIE: u8 = 30;

/// Decodes an NXM match, taking the cookie entry out of it.
fn decode_nxm_cookie(r: &mut Reader<'_>, match_len: usize) -> Result<(Match, u64, u64), OfpErr> {
    let padded = match_len.div_ceil(8) * 8;
    let bytes = r.bytes(padded).map_err(|_| OfpErr::BadLen)?;
    let bytes = &bytes[..match_len];
    let mut rest = Vec::with_capacity(bytes.len());
    let (mut cookie, mut mask) = (0, 0);
    let mut rr = Reader::new(bytes, OfpErr::BmcBadLen);
    while !rr.is_empty() {
        let h = rr.peek_u32(0).ok_or(OfpErr::BmcBadLen)?;
        let len = (h & 0xff) as usize;
        let entry = rr.bytes(4 + len)?;
        if h >> 16 == nxm::NXM_NX as u32 && ((h >> 9) & 0x7f) as u8 == NXM_NX_COOKIE {
            let mut e = Reader::new(&entry[4..], OfpErr::BmcBadLen);
            cookie = e.u64()?;
            mask = if (h >> 8) & 1 == 1 {
                e.u64()?
            } else {
                u64::MAX
            };
            end(&e).map_err(|_| OfpErr::BmcBadLen)?;
        } else {
            rest.extend_from_slice(entry);
        }
    }
    Ok((nxm::decode_entries(&rest)?, cookie & mask, mask))
}

fn encode_nxm_cookie(m: &Match, cookie: u64, mask: u64, w: &mut Writer) -> usize {
    let start = w.len();
    nxm::encode_entries(m, false, w);
    if mask != 0 {
        w.u32(nxm::header(nxm::NXM_NX, NXM_NX_COOKIE, true, 16))
            .u64(cookie & mask)
            .u64(mask);
    }
    let len = w.len() - start;
    w.pad_to(start, 8);
    len
}

fn port10(p: u16) -> u16 {
    p
}

fn decode_port10(r: &mut Reader<'_>) -> Result<PortDesc, OfpErr> {
    let port_no = r.u16()?;
    let hw_addr = r.array()?;
    let name = r.string(16)?;
    // Unknown bits are ignored (and never sent back).
    let config = r.u32()? & 0x7f;
    let state = r.u32()? & ps::LINK_DOWN;
    let f = |v: u32| features_from10(v);
    let curr = f(r.u32()?);
    let advertised = f(r.u32()?);
    let supported = f(r.u32()?);
    let peer = f(r.u32()?);
    Ok(PortDesc {
        port_no,
        hw_addr,
        name,
        config,
        state,
        curr,
        advertised,
        supported,
        peer,
        curr_speed: speed_of(curr),
        max_speed: speed_of(supported),
    })
}

/// kbps of the fastest speed bit in `f`.
fn speed_of(f: u32) -> u32 {
    const SPEEDS: [(u32, u32); 10] = [
        (1 << 9, 1_000_000_000),
        (1 << 8, 100_000_000),
        (1 << 7, 40_000_000),
        (1 << 6, 10_000_000),
        (1 << 5, 1_000_000),
        (1 << 4, 1_000_000),
        (1 << 3, 100_000),
        (1 << 2, 100_000),
        (1 << 1, 10_000),
        (1 << 0, 10_000),
    ];
    SPEEDS
        .iter()
        .find(|(b, _)| f & b != 0)
        .map_or(0, |(_, s)| *s)
}

fn features_from10(v: u32) -> u32 {
    (v & 0x7f) | ((v >> 7) & 0x1f) << 11
}

fn features_to10(v: u32) -> u32 {
    (v & 0x7f) | ((v >> 11) & 0x1f) << 7
}

fn encode_port10(p: &PortDesc, w: &mut Writer) {
    w.u16(port10(p.port_no))
        .bytes(&p.hw_addr)
        .string(&p.name, 16)
        .u32(p.config & 0x7f)
        .u32(p.state & ps::LINK_DOWN)
        .u32(features_to10(p.curr))
        .u32(features_to10(p.advertised))
        .u32(features_to10(p.supported))
        .u32(features_to10(p.peer));
}

fn decode_port13(r: &mut Reader<'_>) -> Result<PortDesc, OfpErr> {
    let port_no = port_from_32(r.u32()?).ok_or(OfpErr::BrcBadPort)?;
    r.skip(4)?;
    let hw_addr = r.array()?;
    r.skip(2)?;
    let name = r.string(16)?;
    Ok(PortDesc {
        port_no,
        hw_addr,
        name,
        config: r.u32()? & (pc::PORT_DOWN | pc::NO_RECV | pc::NO_FWD | pc::NO_PACKET_IN),
        state: r.u32()?,
        curr: r.u32()?,
        advertised: r.u32()?,
        supported: r.u32()?,
        peer: r.u32()?,
        curr_speed: r.u32()?,
        max_speed: r.u32()?,
    })
}

fn encode_port13(p: &PortDesc, w: &mut Writer) {
    w.u32(port_to_32(p.port_no))
        .zeros(4)
        .bytes(&p.hw_addr)
        .zeros(2)
        .string(&p.name, 16)
        .u32(p.config & (pc::PORT_DOWN | pc::NO_RECV | pc::NO_FWD | pc::NO_PACKET_IN))
        .u32(p.state)
        .u32(p.curr)
        .u32(p.advertised)
        .u32(p.supported)
        .u32(p.peer)
        .u32(p.curr_speed)
        .u32(p.max_speed);
}

fn decode10(mt: u8, r: &mut Reader<'_>) -> Result<Msg, OfpErr> {
    Ok(match mt {
        t::ERROR => decode_error(r)?,
        t::ECHO_REQUEST => Msg::EchoRequest(r.rest().to_vec()),
        t::ECHO_REPLY => Msg::EchoReply(r.rest().to_vec()),
        t::VENDOR => decode_vendor(r, OFP10)?,
        t::FEATURES_REQUEST => {
            end(r)?;
            Msg::FeaturesRequest
        }
        t::FEATURES_REPLY => {
            let datapath_id = r.u64()?;
            let n_buffers = r.u32()?;
            let n_tables = r.u8()?;
            r.skip(3)?;
            let capabilities = r.u32()?;
            let actions = r.u32()?;
            if !r.remaining().is_multiple_of(48) {
                return bad_len();
            }
            let mut ports = Vec::new();
            while !r.is_empty() {
                ports.push(decode_port10(r)?);
            }
            Msg::FeaturesReply(Features {
                datapath_id,
                n_buffers,
                n_tables,
                capabilities,
                actions,
                ports,
            })
        }
        t::GET_CONFIG_REQUEST => {
            end(r)?;
            Msg::GetConfigRequest
        }
        t::GET_CONFIG_REPLY | t::SET_CONFIG => {
            let c = SwitchConfig {
                flags: r.u16()?,
                miss_send_len: r.u16()?,
            };
            end(r)?;
            if mt == t::SET_CONFIG {
                Msg::SetConfig(c)
            } else {
                Msg::GetConfigReply(c)
            }
        }
        t::PACKET_IN => {
            let buffer_id = r.u32()?;
            let total_len = r.u16()?;
            let in_port = r.u16()?;
            let reason = r.u8()?;
            r.skip(1)?;
            let mut m = Match::catchall();
            m.set_exact(crate::fields::FieldId::InPort, in_port as u128);
            Msg::PacketIn(PacketInMsg {
                buffer_id,
                total_len,
                reason,
                table_id: 0,
                cookie: u64::MAX,
                match_: m,
                in_port,
                data: r.rest().to_vec(),
            })
        }
        t::FLOW_REMOVED => {
            let match_ = match10::decode(r)?;
            let cookie = r.u64()?;
            let priority = r.u16()?;
            let reason = r.u8()?;
            r.skip(1)?;
            let duration_sec = r.u32()?;
            let duration_nsec = r.u32()?;
            let idle_timeout = r.u16()?;
            r.skip(2)?;
            let packet_count = r.u64()?;
            let byte_count = r.u64()?;
            end(r)?;
            Msg::FlowRemoved(FlowRemovedMsg {
                cookie,
                priority,
                reason,
                table_id: 0,
                duration_sec,
                duration_nsec,
                idle_timeout,
                hard_timeout: 0,
                packet_count,
                byte_count,
                match_,
                nxm: false,
            })
        }
        t::PORT_STATUS => {
            let reason = r.u8()?;
            r.skip(7)?;
            let desc = decode_port10(r)?;
            end(r)?;
            Msg::PortStatus { reason, desc }
        }
        t::PACKET_OUT => {
            let buffer_id = r.u32()?;
            let in_port = r.u16()?;
            let alen = r.u16()? as usize;
            if alen > r.remaining() {
                return Err(OfpErr::BacBadLen);
            }
            let actions = decode_actions(r, alen, OFP10)?;
            Msg::PacketOut(PacketOutMsg {
                buffer_id,
                in_port,
                actions,
                data: r.rest().to_vec(),
            })
        }
        t::FLOW_MOD => {
            let match_ = match10::decode(r)?;
            let cookie = r.u64()?;
            let cmd = r.u16()?;
            let fm = flow_mod_10(r, match_, cookie, cmd, false)?;
            Msg::FlowMod(fm)
        }
        t::T10_PORT_MOD => {
            let port_no = r.u16()?;
            let hw_addr = r.array()?;
            let config = r.u32()?;
            let mask = r.u32()?;
            let advertise = features_from10(r.u32()?);
            r.skip(4)?;
            end(r)?;
            Msg::PortMod(PortModMsg {
                port_no,
                hw_addr,
                config,
                mask,
                advertise,
            })
        }
        t::T10_STATS_REQUEST => {
            let st = r.u16()?;
            let flags = r.u16()?;
            Msg::StatsRequest {
                flags,
                body: decode_stats_request(st, r, OFP10)?,
            }
        }
        t::T10_STATS_REPLY => {
            let st = r.u16()?;
            let flags = r.u16()?;
            Msg::StatsReply {
                flags,
                body: decode_stats_reply(st, r, OFP10)?,
            }
        }
        t::T10_BARRIER_REQUEST => {
            end(r)?;
            Msg::BarrierRequest
        }
        t::T10_BARRIER_REPLY => {
            end(r)?;
            Msg::BarrierReply
        }
        t::T10_QUEUE_GET_CONFIG_REQUEST => {
            let port = r.u16()?;
            r.skip(2)?;
            end(r)?;
            Msg::QueueGetConfigRequest { port }
        }
        t::T10_QUEUE_GET_CONFIG_REPLY => {
            let port = r.u16()?;
            r.skip(6)?;
            Msg::QueueGetConfigReply { port }
        }
        _ => return Err(OfpErr::BadType),
    })
}

/// The rest of an OpenFlow 1.0 or NXM flow-mod after match and cookie.
fn flow_mod_10(
    r: &mut Reader<'_>,
    match_: Match,
    cookie: u64,
    cmd: u16,
    nx: bool,
) -> Result<FlowModMsg, OfpErr> {
    let command = flow_command(cmd as u8)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = r.u16()?;
    let flags = flags10(r.u16()?, command)?;
    let (match_, cookie_filter, cookie_mask) = if nx {
        let match_len = r.u16()? as usize;
        r.skip(6)?;
        decode_nxm_cookie(r, match_len)?
    } else {
        (match_, 0, 0)
    };
    let actions = decode_actions(r, r.remaining(), OFP10)?;
    let mut fm = FlowMod::new(command);
    fm.match_ = match_;
    fm.priority = priority;
    fm.idle_timeout = idle_timeout;
    fm.hard_timeout = hard_timeout;
    fm.flags = flags;
    fm.out_port = out_port;
    fm.actions = actions;
    match command {
        FlowModCommand::Add => fm.cookie = cookie,
        FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
            fm.cookie = if cookie != u64::MAX {
                cookie
            } else {
                cookie_filter
            };
            fm.modify_cookie = cookie != u64::MAX;
            fm.cookie_mask = cookie_mask;
            if fm.modify_cookie && cookie_mask != 0 {
                // Both a new cookie and a cookie filter: not expressible here.
                fm.cookie = cookie;
            }
        }
        _ => {
            fm.cookie = cookie_filter;
            fm.cookie_mask = cookie_mask;
        }
    }
    if !matches!(
        command,
        FlowModCommand::Delete | FlowModCommand::DeleteStrict
    ) {
        fm.out_port = port::NONE;
    }
    Ok(FlowModMsg {
        fm,
        buffer_id,
        table_in_command: (cmd >> 8) as u8,
        nxm: nx,
    })
}

fn decode_vendor(r: &mut Reader<'_>, version: u8) -> Result<Msg, OfpErr> {
    let vendor = r.u32()?;
    if vendor != NX_VENDOR {
        return Err(OfpErr::BadVendor);
    }
    let sub = r.u32()?;
    let u32_body = |r: &mut Reader<'_>| -> Result<u32, OfpErr> {
        let v = r.u32()?;
        end(r)?;
        Ok(v)
    };
    Ok(match sub {
        NXT_SET_FLOW_FORMAT => Msg::NxSetFlowFormat(u32_body(r)?),
        NXT_SET_PACKET_IN_FORMAT => Msg::NxSetPacketInFormat(u32_body(r)?),
        NXT_FLOW_MOD_TABLE_ID => {
            let set = r.u8()?;
            r.skip(7)?;
            end(r)?;
            Msg::NxFlowModTableId(set != 0)
        }
        NXT_SET_CONTROLLER_ID => {
            r.skip(6)?;
            let id = r.u16()?;
            end(r)?;
            Msg::NxSetControllerId(id)
        }
        NXT_FLOW_MOD if version == OFP10 => {
            let cookie = r.u64()?;
            let cmd = r.u16()?;
            Msg::FlowMod(flow_mod_10(r, Match::catchall(), cookie, cmd, true)?)
        }
        NXT_FLOW_REMOVED if version == OFP10 => {
            let cookie = r.u64()?;
            let priority = r.u16()?;
            let reason = r.u8()?;
            let table_id = r.u8()?;
            let duration_sec = r.u32()?;
            let duration_nsec = r.u32()?;
            let idle_timeout = r.u16()?;
            let match_len = r.u16()? as usize;
            let packet_count = r.u64()?;
            let byte_count = r.u64()?;
            let match_ = nxm::decode_nxm(r, match_len)?;
            Msg::FlowRemoved(FlowRemovedMsg {
                cookie,
                priority,
                reason,
                table_id,
                duration_sec,
                duration_nsec,
                idle_timeout,
                hard_timeout: 0,
                packet_count,
                byte_count,
                match_,
                nxm: true,
            })
        }
        NXT_ROLE_REQUEST => return Err(OfpErr::BadSubtype),
        _ => return Err(OfpErr::BadSubtype),
    })
}

fn decode13(mt: u8, r: &mut Reader<'_>) -> Result<Msg, OfpErr> {
    Ok(match mt {
        t::ERROR => decode_error(r)?,
        t::ECHO_REQUEST => Msg::EchoRequest(r.rest().to_vec()),
        t::ECHO_REPLY => Msg::EchoReply(r.rest().to_vec()),
        t::VENDOR => decode_vendor(r, OFP13).map_err(|e| match e {
            OfpErr::BadSubtype => OfpErr::BadSubtype,
            e => e,
        })?,
        t::FEATURES_REQUEST => {
            end(r)?;
            Msg::FeaturesRequest
        }
        t::FEATURES_REPLY => {
            let datapath_id = r.u64()?;
            let n_buffers = r.u32()?;
            let n_tables = r.u8()?;
            r.skip(3)?;
            let capabilities = r.u32()?;
            r.skip(4)?;
            end(r)?;
            Msg::FeaturesReply(Features {
                datapath_id,
                n_buffers,
                n_tables,
                capabilities,
                actions: 0,
                ports: Vec::new(),
            })
        }
        t::GET_CONFIG_REQUEST => {
            end(r)?;
            Msg::GetConfigRequest
        }
        t::GET_CONFIG_REPLY | t::SET_CONFIG => {
            let c = SwitchConfig {
                flags: r.u16()?,
                miss_send_len: r.u16()?,
            };
            end(r)?;
            if mt == t::SET_CONFIG {
                Msg::SetConfig(c)
            } else {
                Msg::GetConfigReply(c)
            }
        }
        t::PACKET_IN => {
            let buffer_id = r.u32()?;
            let total_len = r.u16()?;
            let reason = r.u8()?;
            let table_id = r.u8()?;
            let cookie = r.u64()?;
            let match_ = nxm::decode_oxm_match(r)?;
            r.skip(2)?;
            let in_port = match_.get(crate::fields::FieldId::InPort).0 as u16;
            Msg::PacketIn(PacketInMsg {
                buffer_id,
                total_len,
                reason,
                table_id,
                cookie,
                match_,
                in_port,
                data: r.rest().to_vec(),
            })
        }
        t::FLOW_REMOVED => {
            let cookie = r.u64()?;
            let priority = r.u16()?;
            let reason = r.u8()?;
            let table_id = r.u8()?;
            let duration_sec = r.u32()?;
            let duration_nsec = r.u32()?;
            let idle_timeout = r.u16()?;
            let hard_timeout = r.u16()?;
            let packet_count = r.u64()?;
            let byte_count = r.u64()?;
            let match_ = nxm::decode_oxm_match(r)?;
            end(r)?;
            Msg::FlowRemoved(FlowRemovedMsg {
                cookie,
                priority,
                reason,
                table_id,
                duration_sec,
                duration_nsec,
                idle_timeout,
                hard_timeout,
                packet_count,
                byte_count,
                match_,
                nxm: false,
            })
        }
        t::PORT_STATUS => {
            let reason = r.u8()?;
            r.skip(7)?;
            let desc = decode_port13(r)?;
            end(r)?;
            Msg::PortStatus { reason, desc }
        }
        t::PACKET_OUT => {
            let buffer_id = r.u32()?;
            let in_port = port_from_32(r.u32()?).ok_or(OfpErr::BrcBadPort)?;
            let alen = r.u16()? as usize;
            r.skip(6)?;
            if alen > r.remaining() {
                return Err(OfpErr::BacBadLen);
            }
            let actions = decode_actions(r, alen, OFP13)?;
            Msg::PacketOut(PacketOutMsg {
                buffer_id,
                in_port,
                actions,
                data: r.rest().to_vec(),
            })
        }
        t::FLOW_MOD => Msg::FlowMod(flow_mod_13(r)?),
        t::T13_GROUP_MOD => {
            let command = match r.u16()? {
                0 => GroupModCommand::Add,
                1 => GroupModCommand::Modify,
                2 => GroupModCommand::Delete,
                _ => return Err(OfpErr::GroupBadCommand),
            };
            let kind = group_type(r.u8()?)?;
            r.skip(1)?;
            let group_id = r.u32()?;
            let buckets = decode_buckets(r, r.remaining())?;
            Msg::GroupMod(GroupModMsg {
                command,
                kind,
                group_id,
                buckets,
            })
        }
        t::T13_PORT_MOD => {
            let port_no = port_from_32(r.u32()?).ok_or(OfpErr::PmBadPort)?;
            r.skip(4)?;
            let hw_addr = r.array()?;
            r.skip(2)?;
            let config = r.u32()?;
            let mask = r.u32()?;
            let advertise = r.u32()?;
            r.skip(4)?;
            end(r)?;
            Msg::PortMod(PortModMsg {
                port_no,
                hw_addr,
                config,
                mask,
                advertise,
            })
        }
        t::T13_TABLE_MOD => {
            let table_id = r.u8()?;
            r.skip(3)?;
            let config = r.u32()?;
            end(r)?;
            Msg::TableMod { table_id, config }
        }
        t::T13_MULTIPART_REQUEST => {
            let st = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            Msg::StatsRequest {
                flags,
                body: decode_stats_request(st, r, OFP13)?,
            }
        }
        t::T13_MULTIPART_REPLY => {
            let st = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            Msg::StatsReply {
                flags,
                body: decode_stats_reply(st, r, OFP13)?,
            }
        }
        t::T13_BARRIER_REQUEST => {
            end(r)?;
            Msg::BarrierRequest
        }
        t::T13_BARRIER_REPLY => {
            end(r)?;
            Msg::BarrierReply
        }
        t::T13_QUEUE_GET_CONFIG_REQUEST => {
            let port = port_from_32(r.u32()?).ok_or(OfpErr::QofBadPort)?;
            r.skip(4)?;
            end(r)?;
            Msg::QueueGetConfigRequest { port }
        }
        t::T13_QUEUE_GET_CONFIG_REPLY => {
            let port = port_from_32(r.u32()?).ok_or(OfpErr::QofBadPort)?;
            r.skip(4)?;
            Msg::QueueGetConfigReply { port }
        }
        t::T13_ROLE_REQUEST | t::T13_ROLE_REPLY => {
            let role = r.u32()?;
            r.skip(4)?;
            let generation_id = r.u64()?;
            end(r)?;
            let m = RoleMsg {
                role,
                generation_id,
            };
            if mt == t::T13_ROLE_REQUEST {
                Msg::RoleRequest(m)
            } else {
                Msg::RoleReply(m)
            }
        }
        t::T13_GET_ASYNC_REQUEST => {
            end(r)?;
            Msg::GetAsyncRequest
        }
        t::T13_GET_ASYNC_REPLY | t::T13_SET_ASYNC => {
            let mut a = AsyncConfig::default();
            for v in [&mut a.packet_in, &mut a.port_status, &mut a.flow_removed] {
                v[0] = r.u32()?;
                v[1] = r.u32()?;
            }
            end(r)?;
            if mt == t::T13_SET_ASYNC {
                Msg::SetAsync(a)
            } else {
                Msg::GetAsyncReply(a)
            }
        }
        // Meters are not implemented.
        t::T13_METER_MOD => return Err(OfpErr::BadType),
        _ => return Err(OfpErr::BadType),
    })
}

fn flow_mod_13(r: &mut Reader<'_>) -> Result<FlowModMsg, OfpErr> {
    let cookie = r.u64()?;
    let cookie_mask = r.u64()?;
    let table_id = r.u8()?;
    let command = flow_command(r.u8()?)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = r.u32()?;
    let out_group = r.u32()?;
    let flags = flags13(r.u16()?)?;
    r.skip(2)?;
    let match_ = nxm::decode_oxm_match(r)?;
    let actions = decode_instructions(r, r.remaining())?;
    let mut fm = FlowMod::new(command);
    fm.table_id = (table_id != 255).then_some(table_id);
    fm.match_ = match_;
    fm.priority = priority;
    fm.idle_timeout = idle_timeout;
    fm.hard_timeout = hard_timeout;
    fm.flags = flags;
    fm.actions = actions;
    if command == FlowModCommand::Add {
        fm.cookie = cookie;
    } else {
        fm.cookie = cookie & cookie_mask;
        fm.cookie_mask = cookie_mask;
    }
    if matches!(
        command,
        FlowModCommand::Delete | FlowModCommand::DeleteStrict
    ) {
        fm.out_port = if out_port == OFPG_ANY {
            port::NONE
        } else {
            port_from_32(out_port).ok_or(OfpErr::BrcBadPort)?
        };
        fm.out_group = if out_group == OFPG_ANY {
            u32::MAX
        } else {
            out_group
        };
    }
    Ok(FlowModMsg {
        fm,
        buffer_id,
        table_in_command: 0,
        nxm: false,
    })
}

fn group_type(v: u8) -> Result<GroupType, OfpErr> {
    Ok(match v {
        0 => GroupType::All,
        1 => GroupType::Select,
        2 => GroupType::Indirect,
        3 => GroupType::FastFailover,
        _ => return Err(OfpErr::GroupBadType),
    })
}

fn group_type_code(g: GroupType) -> u8 {
    match g {
        GroupType::All => 0,
        GroupType::Select => 1,
        GroupType::Indirect => 2,
        GroupType::FastFailover => 3,
    }
}

fn decode_buckets(r: &mut Reader<'_>, len: usize) -> Result<Vec<Bucket>, OfpErr> {
    let mut r = Reader::new(
        r.bytes(len).map_err(|_| OfpErr::BadBucket)?,
        OfpErr::BadBucket,
    );
    let mut out = Vec::new();
    while !r.is_empty() {
        let blen = r.peek_u16(0).ok_or(OfpErr::BadBucket)? as usize;
        if blen < 16 || !blen.is_multiple_of(8) {
            return Err(OfpErr::BadBucket);
        }
        let mut b = r.sub(blen)?;
        b.skip(2)?;
        let weight = b.u16()?;
        let watch_port = b.u32()?;
        let watch_group = b.u32()?;
        b.skip(4)?;
        let actions = decode_actions(&mut b, blen - 16, OFP13)?;
        out.push(Bucket {
            weight,
            watch_port,
            watch_group,
            actions,
        });
    }
    Ok(out)
}

fn encode_buckets(buckets: &[Bucket], w: &mut Writer) -> Result<(), Unencodable> {
    for b in buckets {
        let start = w.len();
        w.u16(0)
            .u16(b.weight)
            .u32(b.watch_port)
            .u32(b.watch_group)
            .zeros(4);
        encode_actions(&b.actions, OFP13, None, w)?;
        let len = (w.len() - start) as u16;
        w.put_u16_at(start, len);
    }
    Ok(())
}

fn flow_stats_request(
    r: &mut Reader<'_>,
    version: u8,
    nx: bool,
) -> Result<FlowStatsRequest, OfpErr> {
    if nx {
        let out_port = r.u16()?;
        let match_len = r.u16()? as usize;
        let table_id = r.u8()?;
        r.skip(3)?;
        let (match_, cookie, cookie_mask) = decode_nxm_cookie(r, match_len)?;
        end(r)?;
        return Ok(FlowStatsRequest {
            table_id: (table_id != 255).then_some(table_id),
            out_port,
            out_group: OFPG_ANY,
            cookie,
            cookie_mask,
            match_,
            nxm: true,
        });
    }
    if version == OFP10 {
        let match_ = match10::decode(r)?;
        let table_id = r.u8()?;
        r.skip(1)?;
        let out_port = r.u16()?;
        end(r)?;
        return Ok(FlowStatsRequest {
            table_id: (table_id != 255).then_some(table_id),
            out_port,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            match_,
            nxm: false,
        });
    }
    let table_id = r.u8()?;
    r.skip(3)?;
    let out_port = r.u32()?;
    let out_group = r.u32()?;
    r.skip(4)?;
    let cookie = r.u64()?;
    let cookie_mask = r.u64()?;
    let match_ = nxm::decode_oxm_match(r)?;
    end(r)?;
    Ok(FlowStatsRequest {
        table_id: (table_id != 255).then_some(table_id),
        out_port: if out_port == OFPG_ANY {
            port::NONE
        } else {
            port_from_32(out_port).ok_or(OfpErr::BrcBadPort)?
        },
        out_group,
        cookie: cookie & cookie_mask,
        cookie_mask,
        match_,
        nxm: false,
    })
}

fn decode_stats_request(st: u16, r: &mut Reader<'_>, version: u8) -> Result<StatsRequest, OfpErr> {
    let v13 = version == OFP13;
    Ok(match st {
        st::DESC => {
            end(r)?;
            StatsRequest::Desc
        }
        st::FLOW => StatsRequest::Flow(flow_stats_request(r, version, false)?),
        st::AGGREGATE => StatsRequest::Aggregate(flow_stats_request(r, version, false)?),
        st::TABLE => {
            end(r)?;
            StatsRequest::Table
        }
        st::PORT => {
            let p = if v13 {
                let p = r.u32()?;
                r.skip(4)?;
                if p == OFPG_ANY {
                    port::NONE
                } else {
                    port_from_32(p).ok_or(OfpErr::BrcBadPort)?
                }
            } else {
                let p = r.u16()?;
                r.skip(6)?;
                p
            };
            end(r)?;
            StatsRequest::Port(p)
        }
        st::QUEUE => {
            let p = if v13 {
                port_from_32(r.u32()?).unwrap_or(port::NONE)
            } else {
                let p = r.u16()?;
                r.skip(2)?;
                p
            };
            let queue = r.u32()?;
            end(r)?;
            StatsRequest::Queue { port: p, queue }
        }
        st::GROUP if v13 => {
            let g = r.u32()?;
            r.skip(4)?;
            end(r)?;
            StatsRequest::Group(g)
        }
        st::GROUP_DESC if v13 => {
            end(r)?;
            StatsRequest::GroupDesc
        }
        st::GROUP_FEATURES if v13 => {
            end(r)?;
            StatsRequest::GroupFeatures
        }
        st::METER if v13 => {
            r.rest();
            StatsRequest::Meter
        }
        st::METER_CONFIG if v13 => {
            r.rest();
            StatsRequest::MeterConfig
        }
        st::METER_FEATURES if v13 => {
            end(r)?;
            StatsRequest::MeterFeatures
        }
        st::TABLE_FEATURES if v13 => StatsRequest::TableFeatures(r.rest().to_vec()),
        st::PORT_DESC if v13 => {
            end(r)?;
            StatsRequest::PortDesc
        }
        st::VENDOR => {
            let vendor = r.u32()?;
            if vendor != NX_VENDOR {
                return Err(OfpErr::BadVendor);
            }
            let sub = r.u32()?;
            r.skip(4)?;
            match sub {
                NXST_FLOW if !v13 => StatsRequest::Flow(flow_stats_request(r, version, true)?),
                NXST_AGGREGATE if !v13 => {
                    StatsRequest::Aggregate(flow_stats_request(r, version, true)?)
                }
                _ => return Err(OfpErr::BadSubtype),
            }
        }
        _ => return Err(OfpErr::BadStat),
    })
}

fn decode_desc(r: &mut Reader<'_>) -> Result<DescStats, OfpErr> {
    Ok(DescStats {
        mfr: r.string(256)?,
        hw: r.string(256)?,
        sw: r.string(256)?,
        serial: r.string(32)?,
        dp: r.string(256)?,
    })
}

fn decode_flow_stats(r: &mut Reader<'_>, version: u8, nx: bool) -> Result<Vec<FlowStats>, OfpErr> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.peek_u16(0).ok_or(OfpErr::BadLen)? as usize;
        if len < 8 {
            return bad_len();
        }
        let mut e = r.sub(len)?;
        e.skip(2)?;
        let table_id = e.u8()?;
        e.skip(1)?;
        let fs = if nx {
            let duration_sec = e.u32()?;
            let duration_nsec = e.u32()?;
            let priority = e.u16()?;
            let idle_timeout = e.u16()?;
            let hard_timeout = e.u16()?;
            let match_len = e.u16()? as usize;
            let idle_age = e.u16()?;
            let hard_age = e.u16()?;
            let cookie = e.u64()?;
            let packet_count = e.u64()?;
            let byte_count = e.u64()?;
            let match_ = nxm::decode_nxm(&mut e, match_len)?;
            let n = e.remaining();
            let actions = decode_actions(&mut e, n, OFP10)?;
            FlowStats {
                table_id,
                duration_sec,
                duration_nsec,
                priority,
                idle_timeout,
                hard_timeout,
                flags: FlowModFlags::default(),
                importance: 0,
                cookie,
                packet_count,
                byte_count,
                idle_age: idle_age.saturating_sub(1) as u32,
                hard_age: if hard_age == 0 {
                    duration_sec
                } else {
                    hard_age as u32 - 1
                },
                match_,
                actions,
            }
        } else if version == OFP10 {
            let match_ = match10::decode(&mut e)?;
            let duration_sec = e.u32()?;
            let duration_nsec = e.u32()?;
            let priority = e.u16()?;
            let idle_timeout = e.u16()?;
            let hard_timeout = e.u16()?;
            e.skip(6)?;
            let cookie = e.u64()?;
            let packet_count = e.u64()?;
            let byte_count = e.u64()?;
            let n = e.remaining();
            let actions = decode_actions(&mut e, n, OFP10)?;
            FlowStats {
                table_id,
                duration_sec,
                duration_nsec,
                priority,
                idle_timeout,
                hard_timeout,
                flags: FlowModFlags::default(),
                importance: 0,
                cookie,
                packet_count,
                byte_count,
                idle_age: 0,
                hard_age: duration_sec,
                match_,
                actions,
            }
        } else {
            let duration_sec = e.u32()?;
            let duration_nsec = e.u32()?;
            let priority = e.u16()?;
            let idle_timeout = e.u16()?;
            let hard_timeout = e.u16()?;
            let flags = flags13(e.u16()?)?;
            e.skip(4)?;
            let cookie = e.u64()?;
            let packet_count = e.u64()?;
            let byte_count = e.u64()?;
            let match_ = nxm::decode_oxm_match(&mut e)?;
            let n = e.remaining();
            let actions = decode_instructions(&mut e, n)?;
            FlowStats {
                table_id,
                duration_sec,
                duration_nsec,
                priority,
                idle_timeout,
                hard_timeout,
                flags,
                importance: 0,
                cookie,
                packet_count,
                byte_count,
                idle_age: 0,
                hard_age: duration_sec,
                match_,
                actions,
            }
        };
        out.push(fs);
    }
    Ok(out)
}

fn decode_stats_reply(st: u16, r: &mut Reader<'_>, version: u8) -> Result<StatsReply, OfpErr> {
    let v13 = version == OFP13;
    let aggregate = |r: &mut Reader<'_>, nxm: bool| -> Result<StatsReply, OfpErr> {
        let packets = r.u64()?;
        let bytes = r.u64()?;
        let flows = r.u32()?;
        r.skip(4)?;
        end(r)?;
        Ok(StatsReply::Aggregate {
            nxm,
            packets,
            bytes,
            flows,
        })
    };
    Ok(match st {
        st::DESC => {
            let d = decode_desc(r)?;
            end(r)?;
            StatsReply::Desc(d)
        }
        st::FLOW => StatsReply::Flow {
            nxm: false,
            flows: decode_flow_stats(r, version, false)?,
        },
        st::AGGREGATE => aggregate(r, false)?,
        st::TABLE => {
            let mut out = Vec::new();
            while !r.is_empty() {
                let table_id = r.u8()?;
                r.skip(3)?;
                let mut ts = TableStats {
                    table_id,
                    ..TableStats::default()
                };
                if !v13 {
                    ts.name = r.string(32)?;
                    ts.wildcards = r.u32()?;
                    ts.max_entries = r.u32()?;
                }
                ts.active = r.u32()?;
                ts.lookup = r.u64()?;
                ts.matched = r.u64()?;
                out.push(ts);
            }
            StatsReply::Table(out)
        }
        st::PORT => {
            let mut out = Vec::new();
            while !r.is_empty() {
                let port_no = if v13 {
                    let p = port_from_32(r.u32()?).ok_or(OfpErr::BrcBadPort)?;
                    r.skip(4)?;
                    p
                } else {
                    let p = r.u16()?;
                    r.skip(6)?;
                    p
                };
                let mut s = PortStats {
                    port_no,
                    rx_packets: r.u64()?,
                    tx_packets: r.u64()?,
                    rx_bytes: r.u64()?,
                    tx_bytes: r.u64()?,
                    rx_dropped: r.u64()?,
                    tx_dropped: r.u64()?,
                    rx_errors: r.u64()?,
                    tx_errors: r.u64()?,
                    rx_frame_err: r.u64()?,
                    rx_over_err: r.u64()?,
                    rx_crc_err: r.u64()?,
                    collisions: r.u64()?,
                    ..PortStats::default()
                };
                if v13 {
                    s.duration_sec = r.u32()?;
                    s.duration_nsec = r.u32()?;
                }
                out.push(s);
            }
            StatsReply::Port(out)
        }
        st::QUEUE => {
            r.rest();
            StatsReply::Queue
        }
        st::GROUP if v13 => {
            let mut out = Vec::new();
            while !r.is_empty() {
                let len = r.peek_u16(0).ok_or(OfpErr::BadLen)? as usize;
                if len < 40 || !(len - 40).is_multiple_of(16) {
                    return bad_len();
                }
                let mut e = r.sub(len)?;
                e.skip(4)?;
                let mut g = GroupStats {
                    group_id: e.u32()?,
                    ref_count: e.u32()?,
                    ..GroupStats::default()
                };
                e.skip(4)?;
                g.packet_count = e.u64()?;
                g.byte_count = e.u64()?;
                g.duration_sec = e.u32()?;
                g.duration_nsec = e.u32()?;
                while !e.is_empty() {
                    g.buckets.push((e.u64()?, e.u64()?));
                }
                out.push(g);
            }
            StatsReply::Group(out)
        }
        st::GROUP_DESC if v13 => {
            let mut out = Vec::new();
            while !r.is_empty() {
                let len = r.peek_u16(0).ok_or(OfpErr::BadLen)? as usize;
                if len < 8 {
                    return bad_len();
                }
                let mut e = r.sub(len)?;
                e.skip(2)?;
                let kind = group_type(e.u8()?)?;
                e.skip(1)?;
                let group_id = e.u32()?;
                let buckets = decode_buckets(&mut e, len - 8)?;
                out.push(GroupDesc {
                    kind,
                    group_id,
                    buckets,
                });
            }
            StatsReply::GroupDesc(out)
        }
        st::GROUP_FEATURES if v13 => {
            let mut g = GroupFeatures {
                types: r.u32()?,
                capabilities: r.u32()?,
                ..GroupFeatures::default()
            };
            for i in 0..4 {
                g.max_groups[i] = r.u32()?;
            }
            for i in 0..4 {
                g.actions[i] = r.u32()?;
            }
            end(r)?;
            StatsReply::GroupFeatures(g)
        }
        st::METER if v13 => {
            r.rest();
            StatsReply::Meter
        }
        st::METER_CONFIG if v13 => {
            r.rest();
            StatsReply::MeterConfig
        }
        st::METER_FEATURES if v13 => {
            r.rest();
            StatsReply::MeterFeatures
        }
        st::TABLE_FEATURES if v13 => {
            let mut out = Vec::new();
            while !r.is_empty() {
                let len = r.peek_u16(0).ok_or(OfpErr::BadLen)? as usize;
                if len < 64 {
                    return bad_len();
                }
                let mut e = r.sub(len)?;
                e.skip(2)?;
                let table_id = e.u8()?;
                e.skip(5)?;
                let mut tf = TableFeatures {
                    table_id,
                    name: e.string(32)?,
                    metadata_match: e.u64()?,
                    metadata_write: e.u64()?,
                    config: e.u32()?,
                    max_entries: e.u32()?,
                    props: Vec::new(),
                };
                while !e.is_empty() {
                    let pt = e.u16()?;
                    let plen = e.u16()? as usize;
                    if plen < 4 {
                        return bad_len();
                    }
                    let body = e.bytes(plen - 4)?.to_vec();
                    let pad = (plen.div_ceil(8) * 8 - plen).min(e.remaining());
                    e.skip(pad)?;
                    tf.props.push((pt, body));
                }
                out.push(tf);
            }
            StatsReply::TableFeatures(out)
        }
        st::PORT_DESC if v13 => {
            let mut out = Vec::new();
            while !r.is_empty() {
                out.push(decode_port13(r)?);
            }
            StatsReply::PortDesc(out)
        }
        st::VENDOR => {
            if r.u32()? != NX_VENDOR {
                return Err(OfpErr::BadVendor);
            }
            let sub = r.u32()?;
            r.skip(4)?;
            // As for the requests: Nicira's flow statistics are OpenFlow 1.0's
            // (1.3 has its own, and fvs encodes those).
            match sub {
                NXST_FLOW if !v13 => StatsReply::Flow {
                    nxm: true,
                    flows: decode_flow_stats(r, version, true)?,
                },
                NXST_AGGREGATE if !v13 => aggregate(r, true)?,
                _ => return Err(OfpErr::BadSubtype),
            }
        }
        _ => return Err(OfpErr::BadStat),
    })
}

// ---- encoding ----

fn begin(w: &mut Writer, version: u8, msg_type: u8, xid: u32) {
    w.u8(version).u8(msg_type).u16(0).u32(xid);
}

fn finish(mut w: Writer) -> Vec<u8> {
    let len = w.len().min(u16::MAX as usize) as u16;
    w.put_u16_at(2, len);
    w.buf
}

fn nx_begin(w: &mut Writer, version: u8, xid: u32, sub: u32) {
    begin(w, version, t::VENDOR, xid);
    w.u32(NX_VENDOR).u32(sub);
}

fn stats_types(version: u8) -> (u8, u8) {
    if version == OFP10 {
        (t::T10_STATS_REQUEST, t::T10_STATS_REPLY)
    } else {
        (t::T13_MULTIPART_REQUEST, t::T13_MULTIPART_REPLY)
    }
}

fn stats_begin(w: &mut Writer, version: u8, xid: u32, reply: bool, st: u16, flags: u16) {
    let (rq, rp) = stats_types(version);
    begin(w, version, if reply { rp } else { rq }, xid);
    w.u16(st).u16(flags);
    if version != OFP10 {
        w.zeros(4);
    }
}

/// Encodes a message as one frame. Statistics replies too long for one
/// message are split by [`encode_all`].
pub fn encode(version: u8, xid: u32, msg: &Msg) -> Result<Vec<u8>, Unencodable> {
    let mut all = encode_all(version, xid, msg)?;
    if all.len() == 1 {
        Ok(all.remove(0))
    } else {
        Err(Unencodable("a reply that needs several messages".into()))
    }
}

/// Encodes a message; a statistics reply may become several messages
/// (all but the last flagged "more").
pub fn encode_all(version: u8, xid: u32, msg: &Msg) -> Result<Vec<Vec<u8>>, Unencodable> {
    let v10 = version == OFP10;
    let mut w = Writer::new();
    let simple = |mt10: u8, mt13: u8| {
        let mut w = Writer::new();
        begin(&mut w, version, if v10 { mt10 } else { mt13 }, xid);
        w
    };
    match msg {
        Msg::Hello { bitmap } => {
            begin(&mut w, version, t::HELLO, xid);
            if *bitmap != 0 {
                w.u16(1).u16(8).u32(*bitmap);
            }
        }
        Msg::Error {
            err_type,
            code,
            data,
        } => {
            begin(&mut w, version, t::ERROR, xid);
            w.u16(*err_type).u16(*code).bytes(data);
        }
        Msg::EchoRequest(d) => {
            begin(&mut w, version, t::ECHO_REQUEST, xid);
            w.bytes(d);
        }
        Msg::EchoReply(d) => {
            begin(&mut w, version, t::ECHO_REPLY, xid);
            w.bytes(d);
        }
        Msg::FeaturesRequest => begin(&mut w, version, t::FEATURES_REQUEST, xid),
        Msg::FeaturesReply(f) => {
            begin(&mut w, version, t::FEATURES_REPLY, xid);
            w.u64(f.datapath_id)
                .u32(f.n_buffers)
                .u8(f.n_tables)
                .zeros(3)
                .u32(f.capabilities);
            if v10 {
                w.u32(f.actions);
                for p in &f.ports {
                    encode_port10(p, &mut w);
                }
            } else {
                w.u32(0);
            }
        }
        Msg::GetConfigRequest => begin(&mut w, version, t::GET_CONFIG_REQUEST, xid),
        Msg::GetConfigReply(c) | Msg::SetConfig(c) => {
            let mt = if matches!(msg, Msg::SetConfig(_)) {
                t::SET_CONFIG
            } else {
                t::GET_CONFIG_REPLY
            };
            begin(&mut w, version, mt, xid);
            w.u16(c.flags).u16(c.miss_send_len);
        }
        Msg::PacketIn(p) => {
            begin(&mut w, version, t::PACKET_IN, xid);
            w.u32(p.buffer_id).u16(p.total_len);
            if v10 {
                w.u16(p.in_port).u8(p.reason).u8(0);
            } else {
                w.u8(p.reason).u8(p.table_id).u64(p.cookie);
                nxm::encode_oxm_match(&p.match_, &mut w);
                w.zeros(2);
            }
            w.bytes(&p.data);
        }
        Msg::FlowRemoved(f) => {
            if f.nxm && v10 {
                nx_begin(&mut w, version, xid, NXT_FLOW_REMOVED);
                w.u64(f.cookie)
                    .u16(f.priority)
                    .u8(f.reason)
                    .u8(f.table_id)
                    .u32(f.duration_sec)
                    .u32(f.duration_nsec)
                    .u16(f.idle_timeout);
                let at = w.len();
                w.u16(0).u64(f.packet_count).u64(f.byte_count);
                let len = nxm::encode_nxm(&f.match_, &mut w);
                w.put_u16_at(at, len as u16);
            } else if v10 {
                begin(&mut w, version, t::FLOW_REMOVED, xid);
                match10::encode(&f.match_, &mut w);
                w.u64(f.cookie)
                    .u16(f.priority)
                    .u8(f.reason)
                    .u8(0)
                    .u32(f.duration_sec)
                    .u32(f.duration_nsec)
                    .u16(f.idle_timeout)
                    .zeros(2)
                    .u64(f.packet_count)
                    .u64(f.byte_count);
            } else {
                begin(&mut w, version, t::FLOW_REMOVED, xid);
                w.u64(f.cookie)
                    .u16(f.priority)
                    .u8(f.reason)
                    .u8(f.table_id)
                    .u32(f.duration_sec)
                    .u32(f.duration_nsec)
                    .u16(f.idle_timeout)
                    .u16(f.hard_timeout)
                    .u64(f.packet_count)
                    .u64(f.byte_count);
                nxm::encode_oxm_match(&f.match_, &mut w);
            }
        }
        Msg::PortStatus { reason, desc } => {
            begin(&mut w, version, t::PORT_STATUS, xid);
            w.u8(*reason).zeros(7);
            if v10 {
                encode_port10(desc, &mut w);
            } else {
                encode_port13(desc, &mut w);
            }
        }
        Msg::PacketOut(p) => {
            begin(&mut w, version, t::PACKET_OUT, xid);
            w.u32(p.buffer_id);
            let at;
            if v10 {
                w.u16(p.in_port);
                at = w.len();
                w.u16(0);
            } else {
                w.u32(port_to_32(p.in_port));
                at = w.len();
                w.u16(0).zeros(6);
            }
            let start = w.len();
            encode_actions(&p.actions, version, None, &mut w)?;
            let alen = (w.len() - start) as u16;
            w.put_u16_at(at, alen);
            w.bytes(&p.data);
        }
        Msg::FlowMod(f) => encode_flow_mod(&mut w, version, xid, f)?,
        Msg::GroupMod(g) => {
            if v10 {
                return Err(Unencodable("group-mod in OpenFlow 1.0".into()));
            }
            begin(&mut w, version, t::T13_GROUP_MOD, xid);
            w.u16(match g.command {
                GroupModCommand::Add => 0,
                GroupModCommand::Modify => 1,
                GroupModCommand::Delete => 2,
            })
            .u8(group_type_code(g.kind))
            .u8(0)
            .u32(g.group_id);
            encode_buckets(&g.buckets, &mut w)?;
        }
        Msg::PortMod(p) => {
            if v10 {
                begin(&mut w, version, t::T10_PORT_MOD, xid);
                w.u16(p.port_no)
                    .bytes(&p.hw_addr)
                    .u32(p.config)
                    .u32(p.mask)
                    .u32(features_to10(p.advertise))
                    .zeros(4);
            } else {
                begin(&mut w, version, t::T13_PORT_MOD, xid);
                w.u32(port_to_32(p.port_no))
                    .zeros(4)
                    .bytes(&p.hw_addr)
                    .zeros(2)
                    .u32(p.config)
                    .u32(p.mask)
                    .u32(p.advertise)
                    .zeros(4);
            }
        }
        Msg::TableMod { table_id, config } => {
            if v10 {
                return Err(Unencodable("table-mod in OpenFlow 1.0".into()));
            }
            begin(&mut w, version, t::T13_TABLE_MOD, xid);
            w.u8(*table_id).zeros(3).u32(*config);
        }
        Msg::StatsRequest { flags, body } => {
            encode_stats_request(&mut w, version, xid, *flags, body)?
        }
        Msg::StatsReply { flags, body } => return encode_stats_reply(version, xid, *flags, body),
        Msg::BarrierRequest => w = simple(t::T10_BARRIER_REQUEST, t::T13_BARRIER_REQUEST),
        Msg::BarrierReply => w = simple(t::T10_BARRIER_REPLY, t::T13_BARRIER_REPLY),
        Msg::QueueGetConfigRequest { port: p } | Msg::QueueGetConfigReply { port: p } => {
            let req = matches!(msg, Msg::QueueGetConfigRequest { .. });
            w = if req {
                simple(
                    t::T10_QUEUE_GET_CONFIG_REQUEST,
                    t::T13_QUEUE_GET_CONFIG_REQUEST,
                )
            } else {
                simple(t::T10_QUEUE_GET_CONFIG_REPLY, t::T13_QUEUE_GET_CONFIG_REPLY)
            };
            if v10 {
                w.u16(*p).zeros(if req { 2 } else { 6 });
            } else {
                w.u32(port_to_32(*p)).zeros(4);
            }
        }
        Msg::RoleRequest(r) | Msg::RoleReply(r) => {
            if v10 {
                return Err(Unencodable("role request in OpenFlow 1.0".into()));
            }
            let mt = if matches!(msg, Msg::RoleRequest(_)) {
                t::T13_ROLE_REQUEST
            } else {
                t::T13_ROLE_REPLY
            };
            begin(&mut w, version, mt, xid);
            w.u32(r.role).zeros(4).u64(r.generation_id);
        }
        Msg::GetAsyncRequest => {
            if v10 {
                return Err(Unencodable("async config in OpenFlow 1.0".into()));
            }
            begin(&mut w, version, t::T13_GET_ASYNC_REQUEST, xid);
        }
        Msg::GetAsyncReply(a) | Msg::SetAsync(a) => {
            if v10 {
                return Err(Unencodable("async config in OpenFlow 1.0".into()));
            }
            let mt = if matches!(msg, Msg::SetAsync(_)) {
                t::T13_SET_ASYNC
            } else {
                t::T13_GET_ASYNC_REPLY
            };
            begin(&mut w, version, mt, xid);
            for v in [a.packet_in, a.port_status, a.flow_removed] {
                w.u32(v[0]).u32(v[1]);
            }
        }
        Msg::NxSetFlowFormat(f) => {
            nx_begin(&mut w, version, xid, NXT_SET_FLOW_FORMAT);
            w.u32(*f);
        }
        Msg::NxSetPacketInFormat(f) => {
            nx_begin(&mut w, version, xid, NXT_SET_PACKET_IN_FORMAT);
            w.u32(*f);
        }
        Msg::NxFlowModTableId(on) => {
            nx_begin(&mut w, version, xid, NXT_FLOW_MOD_TABLE_ID);
            w.u8(*on as u8).zeros(7);
        }
        Msg::NxSetControllerId(id) => {
            nx_begin(&mut w, version, xid, NXT_SET_CONTROLLER_ID);
            w.zeros(6).u16(*id);
        }
    }
    if w.len() > MAX_MSG {
        return Err(Unencodable("message over 64 kB".into()));
    }
    Ok(vec![finish(w)])
}

fn encode_flow_mod(
    w: &mut Writer,
    version: u8,
    xid: u32,
    f: &FlowModMsg,
) -> Result<(), Unencodable> {
    let fm = &f.fm;
    let cmd = command_code(fm.command) as u16 | (f.table_in_command as u16) << 8;
    let wire_cookie = match fm.command {
        FlowModCommand::Add => fm.cookie,
        FlowModCommand::Modify | FlowModCommand::ModifyStrict if fm.modify_cookie => fm.cookie,
        FlowModCommand::Modify | FlowModCommand::ModifyStrict => u64::MAX,
        _ => 0,
    };
    let out_port = if matches!(
        fm.command,
        FlowModCommand::Delete | FlowModCommand::DeleteStrict
    ) {
        fm.out_port
    } else {
        port::NONE
    };
    if version == OFP10 {
        if f.nxm {
            nx_begin(w, version, xid, NXT_FLOW_MOD);
            w.u64(wire_cookie).u16(cmd);
        } else {
            begin(w, version, t::FLOW_MOD, xid);
            match10::encode(&fm.match_, w);
            w.u64(wire_cookie).u16(cmd);
        }
        w.u16(fm.idle_timeout)
            .u16(fm.hard_timeout)
            .u16(fm.priority)
            .u32(f.buffer_id)
            .u16(out_port)
            .u16(flags_code(&fm.flags, version));
        if f.nxm {
            let at = w.len();
            w.u16(0).zeros(6);
            let (cookie, mask) =
                if fm.command == FlowModCommand::Add || (fm.modify_cookie && fm.cookie_mask == 0) {
                    (0, 0)
                } else {
                    (fm.cookie, fm.cookie_mask)
                };
            let len = encode_nxm_cookie(&fm.match_, cookie, mask, w);
            w.put_u16_at(at, len as u16);
        }
        encode_actions(&fm.actions, version, Some(&fm.match_), w)?;
    } else {
        begin(w, version, t::FLOW_MOD, xid);
        let (cookie, mask) = if fm.command == FlowModCommand::Add {
            (fm.cookie, 0)
        } else {
            (fm.cookie, fm.cookie_mask)
        };
        let default_table = match fm.command {
            FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict => 0,
            _ => 255,
        };
        w.u64(cookie)
            .u64(mask)
            .u8(fm.table_id.unwrap_or(default_table))
            .u8(command_code(fm.command))
            .u16(fm.idle_timeout)
            .u16(fm.hard_timeout)
            .u16(fm.priority)
            .u32(f.buffer_id)
            .u32(if out_port == port::NONE {
                OFPG_ANY
            } else {
                port_to_32(out_port)
            })
            .u32(if fm.out_group == u32::MAX {
                OFPG_ANY
            } else {
                fm.out_group
            })
            .u16(flags_code(&fm.flags, version))
            .zeros(2);
        nxm::encode_oxm_match(&fm.match_, w);
        encode_instructions(&fm.actions, Some(&fm.match_), w)?;
    }
    Ok(())
}

fn encode_flow_stats_request(w: &mut Writer, version: u8, f: &FlowStatsRequest) {
    if f.nxm {
        w.u16(f.out_port);
        let at = w.len();
        w.u16(0).u8(f.table_id.unwrap_or(255)).zeros(3);
        let len = encode_nxm_cookie(&f.match_, f.cookie, f.cookie_mask, w);
        w.put_u16_at(at, len as u16);
    } else if version == OFP10 {
        match10::encode(&f.match_, w);
        w.u8(f.table_id.unwrap_or(255)).u8(0).u16(f.out_port);
    } else {
        w.u8(f.table_id.unwrap_or(255))
            .zeros(3)
            .u32(if f.out_port == port::NONE {
                OFPG_ANY
            } else {
                port_to_32(f.out_port)
            })
            .u32(f.out_group)
            .zeros(4)
            .u64(f.cookie)
            .u64(f.cookie_mask);
        nxm::encode_oxm_match(&f.match_, w);
    }
}

fn encode_stats_request(
    w: &mut Writer,
    version: u8,
    xid: u32,
    flags: u16,
    body: &StatsRequest,
) -> Result<(), Unencodable> {
    let v13 = version == OFP13;
    let need13 = |what: &str| -> Result<(), Unencodable> {
        if v13 {
            Ok(())
        } else {
            Err(Unencodable(format!("{what} in OpenFlow 1.0")))
        }
    };
    match body {
        StatsRequest::Desc => stats_begin(w, version, xid, false, st::DESC, flags),
        StatsRequest::Flow(f) | StatsRequest::Aggregate(f) => {
            let agg = matches!(body, StatsRequest::Aggregate(_));
            if f.nxm && !v13 {
                stats_begin(w, version, xid, false, st::VENDOR, flags);
                w.u32(NX_VENDOR)
                    .u32(if agg { NXST_AGGREGATE } else { NXST_FLOW })
                    .zeros(4);
            } else {
                stats_begin(
                    w,
                    version,
                    xid,
                    false,
                    if agg { st::AGGREGATE } else { st::FLOW },
                    flags,
                );
            }
            encode_flow_stats_request(w, version, f);
        }
        StatsRequest::Table => stats_begin(w, version, xid, false, st::TABLE, flags),
        StatsRequest::Port(p) => {
            stats_begin(w, version, xid, false, st::PORT, flags);
            if v13 {
                w.u32(if *p == port::NONE {
                    OFPG_ANY
                } else {
                    port_to_32(*p)
                })
                .zeros(4);
            } else {
                w.u16(*p).zeros(6);
            }
        }
        StatsRequest::Queue { port: p, queue } => {
            stats_begin(w, version, xid, false, st::QUEUE, flags);
            if v13 {
                w.u32(port_to_32(*p));
            } else {
                w.u16(*p).zeros(2);
            }
            w.u32(*queue);
        }
        StatsRequest::Group(g) => {
            need13("group stats")?;
            stats_begin(w, version, xid, false, st::GROUP, flags);
            w.u32(*g).zeros(4);
        }
        StatsRequest::GroupDesc => {
            need13("group description")?;
            stats_begin(w, version, xid, false, st::GROUP_DESC, flags);
        }
        StatsRequest::GroupFeatures => {
            need13("group features")?;
            stats_begin(w, version, xid, false, st::GROUP_FEATURES, flags);
        }
        StatsRequest::Meter => {
            need13("meters")?;
            stats_begin(w, version, xid, false, st::METER, flags);
            w.u32(0xffff_ffff).zeros(4);
        }
        StatsRequest::MeterConfig => {
            need13("meters")?;
            stats_begin(w, version, xid, false, st::METER_CONFIG, flags);
            w.u32(0xffff_ffff).zeros(4);
        }
        StatsRequest::MeterFeatures => {
            need13("meters")?;
            stats_begin(w, version, xid, false, st::METER_FEATURES, flags);
        }
        StatsRequest::TableFeatures(b) => {
            need13("table features")?;
            stats_begin(w, version, xid, false, st::TABLE_FEATURES, flags);
            w.bytes(b);
        }
        StatsRequest::PortDesc => {
            need13("port description")?;
            stats_begin(w, version, xid, false, st::PORT_DESC, flags);
        }
    }
    Ok(())
}

fn encode_flow_stats_entry(version: u8, nx: bool, f: &FlowStats) -> Result<Vec<u8>, Unencodable> {
    let mut w = Writer::new();
    w.u16(0).u8(f.table_id).u8(0);
    if nx {
        w.u32(f.duration_sec)
            .u32(f.duration_nsec)
            .u16(f.priority)
            .u16(f.idle_timeout)
            .u16(f.hard_timeout);
        let at = w.len();
        w.u16(0)
            .u16(f.idle_age.saturating_add(1).min(0xffff) as u16)
            .u16(f.hard_age.saturating_add(1).min(0xffff) as u16)
            .u64(f.cookie)
            .u64(f.packet_count)
            .u64(f.byte_count);
        let len = nxm::encode_nxm(&f.match_, &mut w);
        w.put_u16_at(at, len as u16);
        encode_actions_lossy(&f.actions, OFP10, &f.match_, &mut w);
    } else if version == OFP10 {
        match10::encode(&f.match_, &mut w);
        w.u32(f.duration_sec)
            .u32(f.duration_nsec)
            .u16(f.priority)
            .u16(f.idle_timeout)
            .u16(f.hard_timeout)
            .zeros(6)
            .u64(f.cookie)
            .u64(f.packet_count)
            .u64(f.byte_count);
        encode_actions_lossy(&f.actions, OFP10, &f.match_, &mut w);
    } else {
        w.u32(f.duration_sec)
            .u32(f.duration_nsec)
            .u16(f.priority)
            .u16(f.idle_timeout)
            .u16(f.hard_timeout)
            .u16(flags_code(&f.flags, version))
            .zeros(4)
            .u64(f.cookie)
            .u64(f.packet_count)
            .u64(f.byte_count);
        nxm::encode_oxm_match(&f.match_, &mut w);
        encode_instructions(&f.actions, Some(&f.match_), &mut w)?;
    }
    let len = w.len() as u16;
    w.put_u16_at(0, len);
    Ok(w.buf)
}

/// Encodes what can be encoded (a rule's actions in an older version's
/// reply: OVS leaves out what the version cannot say, too).
fn encode_actions_lossy(actions: &[OfAction], version: u8, m: &Match, w: &mut Writer) {
    for a in actions {
        let mut one = Writer::new();
        if encode_actions(std::slice::from_ref(a), version, Some(m), &mut one).is_ok() {
            w.bytes(&one.buf);
        }
    }
}

fn encode_group_desc_entry(g: &GroupDesc) -> Result<Vec<u8>, Unencodable> {
    let mut w = Writer::new();
    w.u16(0).u8(group_type_code(g.kind)).u8(0).u32(g.group_id);
    encode_buckets(&g.buckets, &mut w)?;
    let len = w.len() as u16;
    w.put_u16_at(0, len);
    Ok(w.buf)
}

fn encode_table_features_entry(tf: &TableFeatures) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(0)
        .u8(tf.table_id)
        .zeros(5)
        .string(&tf.name, 32)
        .u64(tf.metadata_match)
        .u64(tf.metadata_write)
        .u32(tf.config)
        .u32(tf.max_entries);
    for (pt, body) in &tf.props {
        let start = w.len();
        w.u16(*pt).u16((4 + body.len()) as u16).bytes(body);
        w.pad_to(start, 8);
    }
    let len = w.len() as u16;
    w.put_u16_at(0, len);
    w.buf
}

fn encode_stats_reply(
    version: u8,
    xid: u32,
    flags: u16,
    body: &StatsReply,
) -> Result<Vec<Vec<u8>>, Unencodable> {
    let v13 = version == OFP13;
    // The body as entries (split between messages if too many).
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut prefix = Writer::new();
    let st = match body {
        StatsReply::Desc(d) => {
            let mut w = Writer::new();
            w.string(&d.mfr, 256)
                .string(&d.hw, 256)
                .string(&d.sw, 256)
                .string(&d.serial, 32)
                .string(&d.dp, 256);
            entries.push(w.buf);
            st::DESC
        }
        StatsReply::Flow { nxm, flows } => {
            let nx = *nxm && !v13;
            for f in flows {
                entries.push(encode_flow_stats_entry(version, nx, f)?);
            }
            if nx {
                prefix.u32(NX_VENDOR).u32(NXST_FLOW).zeros(4);
                st::VENDOR
            } else {
                st::FLOW
            }
        }
        StatsReply::Aggregate {
            nxm,
            packets,
            bytes,
            flows,
        } => {
            let mut w = Writer::new();
            w.u64(*packets).u64(*bytes).u32(*flows).zeros(4);
            entries.push(w.buf);
            if *nxm && !v13 {
                prefix.u32(NX_VENDOR).u32(NXST_AGGREGATE).zeros(4);
                st::VENDOR
            } else {
                st::AGGREGATE
            }
        }
        StatsReply::Table(ts) => {
            for t in ts {
                let mut w = Writer::new();
                w.u8(t.table_id).zeros(3);
                if !v13 {
                    w.string(&t.name, 32).u32(t.wildcards).u32(t.max_entries);
                }
                w.u32(t.active).u64(t.lookup).u64(t.matched);
                entries.push(w.buf);
            }
            st::TABLE
        }
        StatsReply::Port(ps) => {
            for p in ps {
                let mut w = Writer::new();
                if v13 {
                    w.u32(port_to_32(p.port_no)).zeros(4);
                } else {
                    w.u16(p.port_no).zeros(6);
                }
                for v in [
                    p.rx_packets,
                    p.tx_packets,
                    p.rx_bytes,
                    p.tx_bytes,
                    p.rx_dropped,
                    p.tx_dropped,
                    p.rx_errors,
                    p.tx_errors,
                    p.rx_frame_err,
                    p.rx_over_err,
                    p.rx_crc_err,
                    p.collisions,
                ] {
                    w.u64(v);
                }
                if v13 {
                    w.u32(p.duration_sec).u32(p.duration_nsec);
                }
                entries.push(w.buf);
            }
            st::PORT
        }
        StatsReply::Queue => st::QUEUE,
        StatsReply::Group(gs) => {
            for g in gs {
                let mut w = Writer::new();
                w.u16((40 + 16 * g.buckets.len()) as u16)
                    .zeros(2)
                    .u32(g.group_id)
                    .u32(g.ref_count)
                    .zeros(4)
                    .u64(g.packet_count)
                    .u64(g.byte_count)
                    .u32(g.duration_sec)
                    .u32(g.duration_nsec);
                for (p, b) in &g.buckets {
                    w.u64(*p).u64(*b);
                }
                entries.push(w.buf);
            }
            st::GROUP
        }
        StatsReply::GroupDesc(gs) => {
            for g in gs {
                entries.push(encode_group_desc_entry(g)?);
            }
            st::GROUP_DESC
        }
        StatsReply::GroupFeatures(g) => {
            let mut w = Writer::new();
            w.u32(g.types).u32(g.capabilities);
            for v in g.max_groups.iter().chain(g.actions.iter()) {
                w.u32(*v);
            }
            entries.push(w.buf);
            st::GROUP_FEATURES
        }
        StatsReply::Meter => st::METER,
        StatsReply::MeterConfig => st::METER_CONFIG,
        StatsReply::MeterFeatures => {
            let mut w = Writer::new();
            w.u32(0).u32(0).u32(0).u8(0).u8(0).zeros(2);
            entries.push(w.buf);
            st::METER_FEATURES
        }
        StatsReply::TableFeatures(ts) => {
            for tf in ts {
                entries.push(encode_table_features_entry(tf));
            }
            st::TABLE_FEATURES
        }
        StatsReply::PortDesc(ps) => {
            for p in ps {
                let mut w = Writer::new();
                encode_port13(p, &mut w);
                entries.push(w.buf);
            }
            st::PORT_DESC
        }
    };
    if !v13
        && matches!(
            st,
            st::GROUP
                | st::GROUP_DESC
                | st::GROUP_FEATURES
                | st::PORT_DESC
                | st::TABLE_FEATURES
                | st::METER
                | st::METER_CONFIG
                | st::METER_FEATURES
        )
    {
        return Err(Unencodable(
            "an OpenFlow 1.3 statistic in OpenFlow 1.0".into(),
        ));
    }
    let head = if v13 { 16 } else { 12 } + prefix.len();
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for e in entries {
        if head + cur.len() + e.len() > MAX_MSG && !cur.is_empty() {
            chunks.push(std::mem::take(&mut cur));
        }
        if head + e.len() > MAX_MSG {
            return Err(Unencodable("a statistics entry over 64 kB".into()));
        }
        cur.extend_from_slice(&e);
    }
    chunks.push(cur);
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        let more = if i + 1 < n { 1 } else { 0 };
        let mut w = Writer::new();
        stats_begin(&mut w, version, xid, true, st, flags | more);
        w.bytes(&prefix.buf).bytes(&c);
        out.push(finish(w));
    }
    Ok(out)
}
