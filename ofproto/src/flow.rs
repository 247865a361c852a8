//! The OpenFlow view of a packet: the datapath key plus the pipeline's own
//! registers (`metadata`, `reg0`–`reg15`), in one byte layout so that a
//! [`Match`] is a value and a mask of the same shape.
//!
//! In an [`OfFlow`] the `in_port` slot holds the OpenFlow port number, not
//! the datapath port number the datapath key carries.

use fvs_datapath::key::{self, FlowKey, KEY_LEN};

use crate::fields::{Field, FieldId};

/// Bytes in an [`OfFlow`].
pub const OF_LEN: usize = KEY_LEN + 8 + 16 * 4;
/// 64-bit words in an [`OfFlow`].
pub const OF_WORDS: usize = OF_LEN / 8;

/// Byte offsets in an [`OfFlow`]: those of the datapath key, then the registers.
pub mod ofs {
    pub use fvs_datapath::key::ofs::*;
    pub const METADATA: usize = fvs_datapath::key::KEY_LEN;
    pub const REGS: usize = METADATA + 8;
}

/// Values of the fields of a packet as the OpenFlow pipeline sees them (also
/// used as a mask of the same layout).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
pub struct OfFlow {
    pub b: [u8; OF_LEN],
}

impl Default for OfFlow {
    fn default() -> Self {
        Self::ZERO
    }
}

impl OfFlow {
    pub const ZERO: OfFlow = OfFlow { b: [0; OF_LEN] };
    pub const ONES: OfFlow = OfFlow { b: [0xff; OF_LEN] };

    /// The flow a packet with datapath key `key` starts the pipeline with,
    /// having arrived on OpenFlow port `ofport`.
    pub fn from_key(key: &FlowKey, ofport: u32) -> OfFlow {
        let mut f = OfFlow::ZERO;
        f.b[..KEY_LEN].copy_from_slice(&key.b);
        f.set_in_port(ofport);
        f
    }

    /// The datapath-key part of this flow (or mask).
    pub fn key_part(&self) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.b.copy_from_slice(&self.b[..KEY_LEN]);
        k
    }

    #[inline(always)]
    pub fn word(&self, i: usize) -> u64 {
        let s = i * 8;
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.b[s..s + 8]);
        u64::from_ne_bytes(w)
    }

    pub fn in_port(&self) -> u32 {
        u32::from_ne_bytes([self.b[0], self.b[1], self.b[2], self.b[3]])
    }

    pub fn set_in_port(&mut self, port: u32) {
        self.b[ofs::IN_PORT..ofs::IN_PORT + 4].copy_from_slice(&port.to_ne_bytes());
    }

    pub fn dl_type(&self) -> u16 {
        u16::from_be_bytes([self.b[ofs::DL_TYPE], self.b[ofs::DL_TYPE + 1]])
    }

    pub fn nw_proto(&self) -> u8 {
        self.b[ofs::NW_PROTO]
    }

    pub fn is_ip_any(&self) -> bool {
        matches!(self.dl_type(), key::ETH_TYPE_IP | key::ETH_TYPE_IPV6)
    }

    /// The value of `field`, right-aligned.
    #[inline]
    pub fn get(&self, field: FieldId) -> u128 {
        let f = field.def();
        let raw = self.raw(f);
        (raw >> f.shift) & f.value_mask()
    }

    /// Sets the bits of `field` selected by `mask` to those of `value`.
    #[inline]
    pub fn set_masked(&mut self, field: FieldId, value: u128, mask: u128) {
        let f = field.def();
        let m = (mask & f.value_mask()) << f.shift;
        let old = self.raw(f);
        let new = (old & !m) | ((value << f.shift) & m);
        self.set_raw(f, new);
    }

    pub fn set(&mut self, field: FieldId, value: u128) {
        self.set_masked(field, value, u128::MAX);
    }

    /// The field's bytes as one big-endian integer (native-endian for the
    /// `in_port` and `recirc_id` slots, which are not wire fields).
    #[inline]
    fn raw(&self, f: &Field) -> u128 {
        let bytes = &self.b[f.ofs..f.ofs + f.len];
        if f.native_endian {
            let mut w = [0u8; 4];
            w.copy_from_slice(bytes);
            return u32::from_ne_bytes(w) as u128;
        }
        bytes.iter().fold(0u128, |acc, &b| (acc << 8) | b as u128)
    }

    #[inline]
    fn set_raw(&mut self, f: &Field, v: u128) {
        if f.native_endian {
            self.b[f.ofs..f.ofs + 4].copy_from_slice(&(v as u32).to_ne_bytes());
            return;
        }
        let mut v = v;
        for i in (0..f.len).rev() {
            self.b[f.ofs + i] = v as u8;
            v >>= 8;
        }
    }

    pub fn and(&self, mask: &OfFlow) -> OfFlow {
        let mut out = *self;
        for (o, m) in out.b.iter_mut().zip(mask.b.iter()) {
            *o &= *m;
        }
        out
    }

    pub fn or_assign(&mut self, other: &OfFlow) {
        for (o, m) in self.b.iter_mut().zip(other.b.iter()) {
            *o |= *m;
        }
    }

    pub fn is_zero(&self) -> bool {
        self.b.iter().all(|&b| b == 0)
    }
}

impl std::fmt::Debug for OfFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OfFlow(")?;
        for i in 0..OF_WORDS {
            let w = self.word(i);
            if w != 0 {
                write!(f, " w{i}={:016x}", u64::from_be_bytes(w.to_ne_bytes()))?;
            }
        }
        write!(f, " )")
    }
}

/// A match: the fields a rule looks at (`mask`) and the values they must
/// have (`flow`, always within the mask).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Match {
    pub flow: OfFlow,
    pub mask: OfFlow,
}

impl std::fmt::Debug for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Match")
            .field("flow", &self.flow)
            .field("mask", &self.mask)
            .finish()
    }
}

impl Match {
    /// Matches every packet.
    pub fn catchall() -> Match {
        Match::default()
    }

    /// Adds `field == value` under `mask` (bits outside the field's width are ignored).
    pub fn set_masked(&mut self, field: FieldId, value: u128, mask: u128) {
        self.mask.set(field, mask);
        self.flow.set(field, value & mask);
    }

    pub fn set_exact(&mut self, field: FieldId, value: u128) {
        self.set_masked(field, value, u128::MAX);
    }

    /// Stops matching on `field`.
    pub fn clear(&mut self, field: FieldId) {
        self.mask.set(field, 0);
        self.flow.set(field, 0);
    }

    /// The value and mask this match has for `field`.
    pub fn get(&self, field: FieldId) -> (u128, u128) {
        (self.flow.get(field), self.mask.get(field))
    }

    pub fn is_catchall(&self) -> bool {
        self.mask.is_zero()
    }

    /// Whether `flow` satisfies this match.
    pub fn matches(&self, flow: &OfFlow) -> bool {
        (0..OF_WORDS).all(|i| flow.word(i) & self.mask.word(i) == self.flow.word(i))
    }

    /// Whether every packet this match accepts is also accepted by `wider`
    /// (OpenFlow's non-strict flow-mod selection: `wider` is the request).
    pub fn is_subset_of(&self, wider: &Match) -> bool {
        (0..OF_WORDS).all(|i| {
            let wm = wider.mask.word(i);
            // `self` must look at every bit `wider` looks at, with the same values.
            self.mask.word(i) & wm == wm && self.flow.word(i) & wm == wider.flow.word(i)
        })
    }

    /// Whether some packet satisfies both matches.
    pub fn overlaps(&self, other: &Match) -> bool {
        (0..OF_WORDS).all(|i| {
            let common = self.mask.word(i) & other.mask.word(i);
            (self.flow.word(i) ^ other.flow.word(i)) & common == 0
        })
    }
}
