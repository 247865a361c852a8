//! The datapath flow key: every header field the caches match on, in a fixed
//! byte layout.
//!
//! Fields are stored as they appear on the wire (network byte order), so
//! extraction is a copy and masks are byte masks. The layout puts every
//! field an Ethernet/VLAN/IPv4/L4 packet outside a tunnel can have into the
//! first [`HOT_WORDS`] 64-bit words, so that for such packets (see
//! [`FlowKey::is_compact`]) the rest is known to be zero and the EMC hashes
//! and compares six words instead of twenty.
//!
//! Some slots are shared the way OVS shares them: ARP SPA/TPA live in the
//! IPv4 address slots and the ARP opcode in `nw_proto`; ICMP type/code live
//! in `tp_src`/`tp_dst`; ND SLL/TLL live in `arp_sha`/`arp_tha`. The
//! `dl_type` (and `nw_proto`) field tells which meaning applies, and every
//! match on such a field also matches `dl_type`, so sharing is safe.

/// Bytes in a [`FlowKey`].
pub const KEY_LEN: usize = 160;
/// 64-bit words in a [`FlowKey`].
pub const KEY_WORDS: usize = KEY_LEN / 8;
/// Words holding every field of a compact key.
pub const HOT_WORDS: usize = 6;
/// Bytes of the hot words.
pub const HOT_LEN: usize = HOT_WORDS * 8;

/// Byte offsets and lengths of the key's fields.
pub mod ofs {
    /// Datapath input port (native endian u32).
    pub const IN_PORT: usize = 0;
    /// Recirculation id (native endian u32).
    pub const RECIRC_ID: usize = 4;
    pub const DL_DST: usize = 8;
    pub const DL_TYPE: usize = 14;
    pub const DL_SRC: usize = 16;
    /// Outer (or only) VLAN TCI, with the CFI bit (0x1000) set when a tag is present.
    pub const VLAN_TCI: usize = 22;
    /// Inner VLAN TCI of a double-tagged (QinQ) frame, CFI set when present.
    pub const VLAN2_TCI: usize = 24;
    pub const NW_PROTO: usize = 26;
    pub const NW_TOS: usize = 27;
    pub const NW_TTL: usize = 28;
    pub const NW_FRAG: usize = 29;
    /// TCP flags, 12 bits, big endian.
    pub const TCP_FLAGS: usize = 30;
    pub const NW_SRC: usize = 32;
    pub const NW_DST: usize = 36;
    pub const TP_SRC: usize = 40;
    pub const TP_DST: usize = 42;
    /// Tunnel flags (`TUN_FLAG_PRESENT`…), big endian.
    pub const TUN_FLAGS: usize = 44;
    pub const TUN_TOS: usize = 46;
    pub const TUN_TTL: usize = 47;
    pub const IPV6_SRC: usize = 48;
    pub const IPV6_DST: usize = 64;
    pub const ND_TARGET: usize = 80;
    pub const ARP_SHA: usize = 96;
    pub const ARP_THA: usize = 102;
    /// IPv6 flow label, 20 bits in a big endian u32.
    pub const IPV6_LABEL: usize = 108;
    pub const TUN_ID: usize = 112;
    pub const TUN_SRC: usize = 120;
    pub const TUN_DST: usize = 124;
    pub const TUN_IPV6_SRC: usize = 128;
    pub const TUN_IPV6_DST: usize = 144;
}

/// `nw_frag` bit: the packet is a fragment.
pub const FRAG_ANY: u8 = 1;
/// `nw_frag` bit: the packet is a fragment other than the first.
pub const FRAG_LATER: u8 = 2;
/// VLAN TCI bit that marks "a tag is present" (OVS's use of the CFI bit).
pub const VLAN_CFI: u16 = 0x1000;
/// `dl_type` of an 802.3 frame without a SNAP header (as OVS).
pub const DL_TYPE_NONE: u16 = 0x05ff;
/// `tun_flags` bit: the key carries tunnel metadata.
pub const TUN_FLAG_PRESENT: u16 = 0x8000;

pub const ETH_TYPE_IP: u16 = 0x0800;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_RARP: u16 = 0x8035;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_TYPE_VLAN: u16 = 0x8100;
pub const ETH_TYPE_VLAN_8021AD: u16 = 0x88a8;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;

/// What a key holds beyond its hot words, which decides how much of it the
/// EMC hashes and compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Shape {
    /// Anything: all [`KEY_WORDS`] words count.
    Full = 0,
    /// Nothing ([`FlowKey::is_compact`]): the hot words alone.
    Compact = 1,
    /// A key out of a tunnel with nothing there but the tunnel ID and the
    /// IPv4 tunnel addresses ([`TUNNEL4_WORDS`]), as an IPv4 packet out of
    /// an IPv4 tunnel has: the hot words and those two (not fourteen more).
    Tunnel4 = 4,
}

/// The words of the tunnel ID and of the IPv4 tunnel source and destination.
pub const TUNNEL4_WORDS: [usize; 2] = [ofs::TUN_ID / 8, ofs::TUN_SRC / 8];
const _: () = assert!(
    ofs::TUN_ID.is_multiple_of(8)
        && ofs::TUN_SRC.is_multiple_of(8)
        && ofs::TUN_DST == ofs::TUN_SRC + 4
);

/// A datapath flow key (also used, with the same layout, as a mask).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
pub struct FlowKey {
    pub b: [u8; KEY_LEN],
}

impl Default for FlowKey {
    fn default() -> Self {
        Self::ZERO
    }
}

impl FlowKey {
    pub const ZERO: FlowKey = FlowKey { b: [0; KEY_LEN] };
    pub const ONES: FlowKey = FlowKey { b: [0xff; KEY_LEN] };

    #[inline(always)]
    pub fn word(&self, i: usize) -> u64 {
        let (chunks, _) = self.b.as_chunks::<8>();
        u64::from_ne_bytes(chunks[i])
    }

    #[inline(always)]
    pub fn set_word(&mut self, i: usize, w: u64) {
        self.b[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
    }

    /// Sets the hot words (the first [`HOT_WORDS`]).
    #[inline(always)]
    pub fn set_hot(&mut self, words: &[u64; HOT_WORDS]) {
        for (i, &w) in words.iter().enumerate() {
            self.set_word(i, w);
        }
    }

    #[inline(always)]
    pub fn bytes(&self, ofs: usize, len: usize) -> &[u8] {
        &self.b[ofs..ofs + len]
    }

    #[inline(always)]
    pub fn set_bytes(&mut self, ofs: usize, v: &[u8]) {
        self.b[ofs..ofs + v.len()].copy_from_slice(v);
    }

    #[inline(always)]
    pub fn u8_at(&self, ofs: usize) -> u8 {
        self.b[ofs]
    }

    #[inline(always)]
    pub fn be16_at(&self, ofs: usize) -> u16 {
        u16::from_be_bytes([self.b[ofs], self.b[ofs + 1]])
    }

    #[inline(always)]
    pub fn be32_at(&self, ofs: usize) -> u32 {
        u32::from_be_bytes([
            self.b[ofs],
            self.b[ofs + 1],
            self.b[ofs + 2],
            self.b[ofs + 3],
        ])
    }

    #[inline(always)]
    pub fn set_be16(&mut self, ofs: usize, v: u16) {
        self.set_bytes(ofs, &v.to_be_bytes());
    }

    #[inline(always)]
    pub fn set_be32(&mut self, ofs: usize, v: u32) {
        self.set_bytes(ofs, &v.to_be_bytes());
    }

    pub fn in_port(&self) -> u32 {
        u32::from_ne_bytes([self.b[0], self.b[1], self.b[2], self.b[3]])
    }

    pub fn set_in_port(&mut self, port: u32) {
        self.set_bytes(ofs::IN_PORT, &port.to_ne_bytes());
    }

    pub fn recirc_id(&self) -> u32 {
        u32::from_ne_bytes([self.b[4], self.b[5], self.b[6], self.b[7]])
    }

    pub fn set_recirc_id(&mut self, id: u32) {
        self.set_bytes(ofs::RECIRC_ID, &id.to_ne_bytes());
    }

    pub fn dl_type(&self) -> u16 {
        self.be16_at(ofs::DL_TYPE)
    }

    pub fn nw_proto(&self) -> u8 {
        self.b[ofs::NW_PROTO]
    }

    /// Whether every non-zero field lies in the first [`HOT_WORDS`] words:
    /// true unless the packet is IPv6, ARP/RARP or came out of a tunnel
    /// (those fields decide it, and they are in the hot words themselves).
    #[inline(always)]
    pub fn is_compact(&self) -> bool {
        let dl_type = self.dl_type();
        dl_type != ETH_TYPE_IPV6
            && dl_type != ETH_TYPE_ARP
            && dl_type != ETH_TYPE_RARP
            && self.b[ofs::TUN_FLAGS] == 0
            && self.b[ofs::TUN_FLAGS + 1] == 0
    }

    /// The key's [`Shape`]. (A compact key's words beyond the hot ones are
    /// not read: the hot path leaves them stale.)
    pub fn shape(&self) -> Shape {
        if self.is_compact() {
            Shape::Compact
        } else if self.be16_at(ofs::TUN_FLAGS) & TUN_FLAG_PRESENT != 0
            && (HOT_WORDS..KEY_WORDS).all(|i| TUNNEL4_WORDS.contains(&i) || self.word(i) == 0)
        {
            Shape::Tunnel4
        } else {
            Shape::Full
        }
    }

    /// Zeroes the words beyond the hot ones.
    #[inline(always)]
    pub fn clear_cold(&mut self) {
        self.b[HOT_LEN..].fill(0);
    }

    /// Key equality for a key whose compactness ([`FlowKey::is_compact`]) the
    /// caller already knows: six words when it is compact.
    #[inline(always)]
    pub fn fast_eq(&self, other: &FlowKey, compact: bool) -> bool {
        let mut diff = 0;
        for i in 0..HOT_WORDS {
            diff |= self.word(i) ^ other.word(i);
        }
        if diff != 0 {
            return false;
        }
        // Equal hot words: same shape. A compact key has nothing beyond them.
        if compact {
            return true;
        }
        for i in HOT_WORDS..KEY_WORDS {
            diff |= self.word(i) ^ other.word(i);
        }
        diff == 0
    }

    /// `self & mask`.
    #[inline]
    pub fn and(&self, mask: &FlowKey) -> FlowKey {
        let mut out = FlowKey::ZERO;
        for i in 0..KEY_LEN {
            out.b[i] = self.b[i] & mask.b[i];
        }
        out
    }

    /// `self |= other` (unions masks).
    #[inline]
    pub fn or_assign(&mut self, other: &FlowKey) {
        for i in 0..KEY_LEN {
            self.b[i] |= other.b[i];
        }
    }

    pub fn is_zero(&self) -> bool {
        self.b.iter().all(|&b| b == 0)
    }

    /// Indices of the words that are not all zero (for a mask: the words a
    /// lookup has to hash and compare).
    pub fn nonzero_words(&self) -> impl Iterator<Item = usize> + '_ {
        (0..KEY_WORDS).filter(move |&i| self.word(i) != 0)
    }
}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlowKey(")?;
        let mut first = true;
        for i in 0..KEY_WORDS {
            let w = self.word(i);
            if w != 0 {
                if !first {
                    write!(f, " ")?;
                }
                first = false;
                write!(f, "w{i}={:016x}", u64::from_be_bytes(w.to_ne_bytes()))?;
            }
        }
        write!(f, ")")
    }
}
