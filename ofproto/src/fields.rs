//! The match fields OpenFlow rules and actions name, where each lives in an
//! [`OfFlow`](crate::flow::OfFlow), and what it requires of the rest of the
//! match (OVS's meta-flow, reduced to what fvs supports).

use crate::flow::ofs;

/// How a field's value is written in flow syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldFormat {
    Decimal,
    Hex,
    Ethernet,
    Ipv4,
    Ipv6,
    /// An OpenFlow port number (or reserved port name).
    OfpPort,
    /// `nw_frag`: no / yes / first / later / not_later.
    Frag,
    /// `tcp_flags`: +syn-ack… or a number.
    TcpFlags,
}

/// What the rest of a match must pin down for a field to be meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prereq {
    None,
    /// A VLAN header is present (`vlan_tci` CFI bit).
    Vlan,
    Arp,
    Ipv4,
    Ipv6,
    IpAny,
    Tcp,
    Udp,
    Sctp,
    Icmpv4,
    Icmpv6,
    /// ICMPv6 neighbour solicitation or advertisement.
    Nd,
    NdSolicit,
    NdAdvert,
}

/// Whether a match may give the field a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maskable {
    No,
    Yes,
}

/// A field's definition.
#[derive(Debug)]
pub struct Field {
    pub id: FieldId,
    /// OVS's name in flow syntax.
    pub name: &'static str,
    /// The NXM/OXM name used by `load`, `move` and friends.
    pub nxm_name: &'static str,
    /// Byte offset and length of the bytes holding the field.
    pub ofs: usize,
    pub len: usize,
    /// The field is `(bytes >> shift) & value_mask` of those bytes read as a
    /// big-endian integer.
    pub shift: u32,
    pub value_mask_bits: u128,
    /// Width in bits as `load`/`move` subfields count it.
    pub n_bits: u32,
    /// The bytes are a native-endian u32 (internal metadata slots).
    pub native_endian: bool,
    pub maskable: Maskable,
    pub prereq: Prereq,
    pub format: FieldFormat,
    /// Actions may write it (set_field, load, move destination).
    pub writable: bool,
}

impl Field {
    #[inline]
    pub fn value_mask(&self) -> u128 {
        self.value_mask_bits
    }
}

macro_rules! fields {
    ($( $id:ident : $name:literal, $nxm:literal, $ofs:expr, $len:expr, $shift:expr, $vmask:expr, $nbits:expr,
        $maskable:ident, $prereq:ident, $fmt:ident, $writable:expr ; )*) => {
        /// Identifies a match field.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum FieldId { $( $id, )* }

        /// Every field, indexed by `FieldId as usize`.
        pub static FIELDS: &[Field] = &[ $(
            Field {
                id: FieldId::$id,
                name: $name,
                nxm_name: $nxm,
                ofs: $ofs,
                len: $len,
                shift: $shift,
                value_mask_bits: $vmask,
                n_bits: $nbits,
                native_endian: matches!(FieldId::$id, FieldId::InPort),
                maskable: Maskable::$maskable,
                prereq: Prereq::$prereq,
                format: FieldFormat::$fmt,
                writable: $writable,
            },
        )* ];
    };
}

const M8: u128 = 0xff;
const M16: u128 = 0xffff;
const M32: u128 = 0xffff_ffff;
const M48: u128 = 0xffff_ffff_ffff;
const M64: u128 = u64::MAX as u128;
const M128: u128 = u128::MAX;

fields! {
    InPort: "in_port", "NXM_OF_IN_PORT", ofs::IN_PORT, 4, 0, M16, 16, No, None, OfpPort, true;
    EthSrc: "dl_src", "NXM_OF_ETH_SRC", ofs::DL_SRC, 6, 0, M48, 48, Yes, None, Ethernet, true;
    EthDst: "dl_dst", "NXM_OF_ETH_DST", ofs::DL_DST, 6, 0, M48, 48, Yes, None, Ethernet, true;
    EthType: "dl_type", "NXM_OF_ETH_TYPE", ofs::DL_TYPE, 2, 0, M16, 16, No, None, Hex, false;
    VlanTci: "vlan_tci", "NXM_OF_VLAN_TCI", ofs::VLAN_TCI, 2, 0, M16, 16, Yes, None, Hex, true;
    DlVlan: "dl_vlan", "dl_vlan", ofs::VLAN_TCI, 2, 0, 0x0fff, 12, No, None, Decimal, true;
    VlanVid: "vlan_vid", "OXM_OF_VLAN_VID", ofs::VLAN_TCI, 2, 0, 0x1fff, 13, Yes, None, Decimal, true;
    DlVlanPcp: "dl_vlan_pcp", "OXM_OF_VLAN_PCP", ofs::VLAN_TCI, 2, 13, 0x7, 3, No, Vlan, Decimal, true;
    Ipv4Src: "nw_src", "NXM_OF_IP_SRC", ofs::NW_SRC, 4, 0, M32, 32, Yes, Ipv4, Ipv4, true;
    Ipv4Dst: "nw_dst", "NXM_OF_IP_DST", ofs::NW_DST, 4, 0, M32, 32, Yes, Ipv4, Ipv4, true;
    IpProto: "nw_proto", "NXM_OF_IP_PROTO", ofs::NW_PROTO, 1, 0, M8, 8, No, IpAny, Decimal, false;
    IpTos: "nw_tos", "NXM_OF_IP_TOS", ofs::NW_TOS, 1, 0, 0xfc, 8, No, IpAny, Decimal, true;
    IpDscp: "ip_dscp", "OXM_OF_IP_DSCP", ofs::NW_TOS, 1, 2, 0x3f, 6, No, IpAny, Decimal, true;
    IpEcn: "nw_ecn", "NXM_NX_IP_ECN", ofs::NW_TOS, 1, 0, 0x3, 2, No, IpAny, Decimal, true;
    IpTtl: "nw_ttl", "NXM_NX_IP_TTL", ofs::NW_TTL, 1, 0, M8, 8, No, IpAny, Decimal, true;
    IpFrag: "nw_frag", "NXM_NX_IP_FRAG", ofs::NW_FRAG, 1, 0, 0x3, 8, Yes, IpAny, Frag, false;
    TcpSrc: "tcp_src", "NXM_OF_TCP_SRC", ofs::TP_SRC, 2, 0, M16, 16, Yes, Tcp, Decimal, true;
    TcpDst: "tcp_dst", "NXM_OF_TCP_DST", ofs::TP_DST, 2, 0, M16, 16, Yes, Tcp, Decimal, true;
    UdpSrc: "udp_src", "NXM_OF_UDP_SRC", ofs::TP_SRC, 2, 0, M16, 16, Yes, Udp, Decimal, true;
    UdpDst: "udp_dst", "NXM_OF_UDP_DST", ofs::TP_DST, 2, 0, M16, 16, Yes, Udp, Decimal, true;
    SctpSrc: "sctp_src", "OXM_OF_SCTP_SRC", ofs::TP_SRC, 2, 0, M16, 16, Yes, Sctp, Decimal, true;
    SctpDst: "sctp_dst", "OXM_OF_SCTP_DST", ofs::TP_DST, 2, 0, M16, 16, Yes, Sctp, Decimal, true;
    TcpFlags: "tcp_flags", "NXM_NX_TCP_FLAGS", ofs::TCP_FLAGS, 2, 0, 0x0fff, 12, Yes, Tcp, TcpFlags, false;
    IcmpType: "icmp_type", "NXM_OF_ICMP_TYPE", ofs::TP_SRC + 1, 1, 0, M8, 8, No, Icmpv4, Decimal, false;
    IcmpCode: "icmp_code", "NXM_OF_ICMP_CODE", ofs::TP_DST + 1, 1, 0, M8, 8, No, Icmpv4, Decimal, false;
    Icmpv6Type: "icmpv6_type", "NXM_NX_ICMPV6_TYPE", ofs::TP_SRC + 1, 1, 0, M8, 8, No, Icmpv6, Decimal, false;
    Icmpv6Code: "icmpv6_code", "NXM_NX_ICMPV6_CODE", ofs::TP_DST + 1, 1, 0, M8, 8, No, Icmpv6, Decimal, false;
    ArpOp: "arp_op", "NXM_OF_ARP_OP", ofs::NW_PROTO, 1, 0, M8, 8, No, Arp, Decimal, true;
    ArpSpa: "arp_spa", "NXM_OF_ARP_SPA", ofs::NW_SRC, 4, 0, M32, 32, Yes, Arp, Ipv4, true;
    ArpTpa: "arp_tpa", "NXM_OF_ARP_TPA", ofs::NW_DST, 4, 0, M32, 32, Yes, Arp, Ipv4, true;
    ArpSha: "arp_sha", "NXM_NX_ARP_SHA", ofs::ARP_SHA, 6, 0, M48, 48, Yes, Arp, Ethernet, true;
    ArpTha: "arp_tha", "NXM_NX_ARP_THA", ofs::ARP_THA, 6, 0, M48, 48, Yes, Arp, Ethernet, true;
    Ipv6Src: "ipv6_src", "NXM_NX_IPV6_SRC", ofs::IPV6_SRC, 16, 0, M128, 128, Yes, Ipv6, Ipv6, true;
    Ipv6Dst: "ipv6_dst", "NXM_NX_IPV6_DST", ofs::IPV6_DST, 16, 0, M128, 128, Yes, Ipv6, Ipv6, true;
    Ipv6Label: "ipv6_label", "NXM_NX_IPV6_LABEL", ofs::IPV6_LABEL, 4, 0, 0xfffff, 20, Yes, Ipv6, Hex, true;
    NdTarget: "nd_target", "NXM_NX_ND_TARGET", ofs::ND_TARGET, 16, 0, M128, 128, Yes, Nd, Ipv6, true;
    NdSll: "nd_sll", "NXM_NX_ND_SLL", ofs::ARP_SHA, 6, 0, M48, 48, Yes, NdSolicit, Ethernet, true;
    NdTll: "nd_tll", "NXM_NX_ND_TLL", ofs::ARP_THA, 6, 0, M48, 48, Yes, NdAdvert, Ethernet, true;
    Metadata: "metadata", "OXM_OF_METADATA", ofs::METADATA, 8, 0, M64, 64, Yes, None, Hex, true;
    Reg0: "reg0", "NXM_NX_REG0", ofs::REGS, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg1: "reg1", "NXM_NX_REG1", ofs::REGS + 4, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg2: "reg2", "NXM_NX_REG2", ofs::REGS + 8, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg3: "reg3", "NXM_NX_REG3", ofs::REGS + 12, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg4: "reg4", "NXM_NX_REG4", ofs::REGS + 16, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg5: "reg5", "NXM_NX_REG5", ofs::REGS + 20, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg6: "reg6", "NXM_NX_REG6", ofs::REGS + 24, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg7: "reg7", "NXM_NX_REG7", ofs::REGS + 28, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg8: "reg8", "NXM_NX_REG8", ofs::REGS + 32, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg9: "reg9", "NXM_NX_REG9", ofs::REGS + 36, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg10: "reg10", "NXM_NX_REG10", ofs::REGS + 40, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg11: "reg11", "NXM_NX_REG11", ofs::REGS + 44, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg12: "reg12", "NXM_NX_REG12", ofs::REGS + 48, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg13: "reg13", "NXM_NX_REG13", ofs::REGS + 52, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg14: "reg14", "NXM_NX_REG14", ofs::REGS + 56, 4, 0, M32, 32, Yes, None, Hex, true;
    Reg15: "reg15", "NXM_NX_REG15", ofs::REGS + 60, 4, 0, M32, 32, Yes, None, Hex, true;
    TunId: "tun_id", "NXM_NX_TUN_ID", ofs::TUN_ID, 8, 0, M64, 64, Yes, None, Hex, true;
    TunSrc: "tun_src", "NXM_NX_TUN_IPV4_SRC", ofs::TUN_SRC, 4, 0, M32, 32, Yes, None, Ipv4, true;
    TunDst: "tun_dst", "NXM_NX_TUN_IPV4_DST", ofs::TUN_DST, 4, 0, M32, 32, Yes, None, Ipv4, true;
    TunIpv6Src: "tun_ipv6_src", "NXM_NX_TUN_IPV6_SRC", ofs::TUN_IPV6_SRC, 16, 0, M128, 128, Yes, None, Ipv6, true;
    TunIpv6Dst: "tun_ipv6_dst", "NXM_NX_TUN_IPV6_DST", ofs::TUN_IPV6_DST, 16, 0, M128, 128, Yes, None, Ipv6, true;
    TunTos: "tun_tos", "NXM_NX_TUN_IP_TOS", ofs::TUN_TOS, 1, 0, M8, 8, No, None, Decimal, true;
    TunTtl: "tun_ttl", "NXM_NX_TUN_IP_TTL", ofs::TUN_TTL, 1, 0, M8, 8, No, None, Decimal, true;
}

impl FieldId {
    #[inline]
    pub fn def(self) -> &'static Field {
        let f = &FIELDS[self as usize];
        debug_assert_eq!(f.id, self);
        f
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// `regN` for N in 0..16.
    pub fn reg(n: usize) -> Option<FieldId> {
        const REGS: [FieldId; 16] = [
            FieldId::Reg0,
            FieldId::Reg1,
            FieldId::Reg2,
            FieldId::Reg3,
            FieldId::Reg4,
            FieldId::Reg5,
            FieldId::Reg6,
            FieldId::Reg7,
            FieldId::Reg8,
            FieldId::Reg9,
            FieldId::Reg10,
            FieldId::Reg11,
            FieldId::Reg12,
            FieldId::Reg13,
            FieldId::Reg14,
            FieldId::Reg15,
        ];
        REGS.get(n).copied()
    }

    /// Finds a field by its flow-syntax name or its NXM/OXM name.
    pub fn from_name(name: &str) -> Option<FieldId> {
        FIELDS
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name) || f.nxm_name.eq_ignore_ascii_case(name))
            .map(|f| f.id)
    }

    /// Whether the bytes of this field belong to the datapath key (as
    /// opposed to pipeline registers).
    pub fn in_datapath_key(self) -> bool {
        self.def().ofs < ofs::METADATA
    }
}
