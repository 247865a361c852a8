//! OpenFlow actions and instructions as rules hold them (OVS's `ofpact`s).

use crate::fields::FieldId;

/// OpenFlow port numbers (OVS's 16-bit `ofp_port_t` space).
pub mod port {
    /// Highest number a real port may have, plus one.
    pub const MAX: u16 = 0xff00;
    pub const IN_PORT: u16 = 0xfff8;
    pub const TABLE: u16 = 0xfff9;
    pub const NORMAL: u16 = 0xfffa;
    pub const FLOOD: u16 = 0xfffb;
    pub const ALL: u16 = 0xfffc;
    pub const CONTROLLER: u16 = 0xfffd;
    pub const LOCAL: u16 = 0xfffe;
    pub const NONE: u16 = 0xffff;
}

/// A bit range of a field (`NXM_NX_REG0[0..15]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubField {
    pub field: FieldId,
    pub ofs: u32,
    pub n_bits: u32,
}

impl SubField {
    /// The whole field.
    pub fn whole(field: FieldId) -> SubField {
        SubField {
            field,
            ofs: 0,
            n_bits: field.def().n_bits,
        }
    }

    /// Mask of the subfield's bits, in field position.
    pub fn mask(&self) -> u128 {
        let ones = if self.n_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << self.n_bits) - 1
        };
        ones << self.ofs
    }
}

/// How a `set_field`-like action was written, so that it prints back the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetFieldSyntax {
    /// `set_field:V[/M]->F`
    SetField,
    /// `load:V->F[a..b]`
    Load,
}

/// How a VLAN pop was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PopVlanSyntax {
    StripVlan,
    PopVlan,
}

/// Why a packet went to the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketInReason {
    NoMatch,
    Action,
    InvalidTtl,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OfAction {
    /// `output:N`, and the reserved ports (`NORMAL`, `FLOOD`, `ALL`, `LOCAL`,
    /// `IN_PORT`, `TABLE`, `CONTROLLER:max_len`).
    Output { port: u16, max_len: u16 },
    /// `controller`, `controller:max_len`, `controller(reason=…,id=…,max_len=…)`.
    Controller {
        max_len: u16,
        reason: PacketInReason,
        controller_id: u16,
    },
    /// `mod_vlan_vid:vid` (pushes a tag first when there is none).
    SetVlanVid { vid: u16 },
    /// `mod_vlan_pcp:pcp` (pushes a tag first when there is none).
    SetVlanPcp { pcp: u8 },
    /// `strip_vlan` / `pop_vlan`.
    PopVlan { syntax: PopVlanSyntax },
    /// `push_vlan:ethertype`.
    PushVlan { ethertype: u16 },
    /// `mod_dl_src:mac`.
    SetEthSrc([u8; 6]),
    /// `mod_dl_dst:mac`.
    SetEthDst([u8; 6]),
    /// `mod_nw_src:ip`.
    SetIpv4Src([u8; 4]),
    /// `mod_nw_dst:ip`.
    SetIpv4Dst([u8; 4]),
    /// `mod_nw_tos:tos` (the DSCP bits, as they sit in the TOS byte).
    SetIpDscp(u8),
    /// `mod_nw_ecn:ecn`.
    SetIpEcn(u8),
    /// `mod_nw_ttl:ttl`.
    SetIpTtl(u8),
    /// `mod_tp_src:port`.
    SetL4SrcPort(u16),
    /// `mod_tp_dst:port`.
    SetL4DstPort(u16),
    /// `set_field:V[/M]->F` or `load:V->F[a..b]`; value and mask are in
    /// field position (a load of bits 4..7 has mask 0xf0).
    SetField {
        field: FieldId,
        value: u128,
        mask: u128,
        syntax: SetFieldSyntax,
    },
    /// `move:SRC[a..b]->DST[c..d]`.
    Move { src: SubField, dst: SubField },
    /// `dec_ttl` / `dec_ttl(id,…)`.
    DecTtl { controller_ids: Vec<u16> },
    /// `set_tunnel:id` (`wide` = written as `set_tunnel64`).
    SetTunnel { tun_id: u64, wide: bool },
    /// `resubmit:port`, `resubmit(port,table)`; `None` = the current in_port / table.
    Resubmit {
        port: Option<u16>,
        table: Option<u8>,
    },
    /// `note:hex.bytes`.
    Note(Vec<u8>),
    /// `goto_table:N` (an instruction: last).
    GotoTable(u8),
    /// `write_metadata:value[/mask]` (an instruction).
    WriteMetadata { value: u64, mask: u64 },
    /// `group:N`: the packet goes through group N.
    Group(u32),
    /// `clear_actions` (an instruction): empties the action set.
    ClearActions,
    /// `write_actions(…)` (an instruction): merges actions into the action
    /// set, executed when the pipeline ends.
    WriteActions(Vec<OfAction>),
}

impl OfAction {
    /// Whether executing this action can send the packet to group `g`
    /// (flow-mod `out_group` filters).
    pub fn outputs_to_group(&self, g: u32) -> bool {
        match self {
            OfAction::Group(id) => *id == g,
            OfAction::WriteActions(list) => list.iter().any(|a| a.outputs_to_group(g)),
            _ => false,
        }
    }

    /// Whether executing this action can send the packet to `port` (used by
    /// flow-mod `out_port` filters).
    pub fn outputs_to(&self, p: u16) -> bool {
        match self {
            OfAction::Output { port, .. } => *port == p,
            OfAction::Controller { .. } => p == port::CONTROLLER,
            OfAction::WriteActions(list) => list.iter().any(|a| a.outputs_to(p)),
            _ => false,
        }
    }
}
