//! vhost-user messages: the 12-byte header, the request codes and the
//! payloads a backend receives, parsed from untrusted bytes without ever
//! panicking, and the replies it sends.
//!
//! Every message is `request: u32, flags: u32, size: u32` (little endian,
//! the host's order) followed by `size` bytes of payload; file descriptors
//! travel beside it as `SCM_RIGHTS` ancillary data.

use thiserror::Error;

/// Bytes of the header.
pub const HDR_SIZE: usize = 12;
/// Largest payload accepted (the biggest real one, a memory table of 8
/// regions, is 264 bytes; config-space messages are at most 268).
pub const MAX_PAYLOAD: usize = 4096;
/// Most file descriptors one message carries (one per memory region).
pub const MAX_FDS: usize = 8;
/// Most memory regions in `SET_MEM_TABLE`.
pub const MAX_REGIONS: usize = 8;

/// Protocol version, in the low two bits of `flags`.
pub const VERSION: u32 = 0x1;
pub const FLAG_VERSION_MASK: u32 = 0x3;
/// Set on replies.
pub const FLAG_REPLY: u32 = 1 << 2;
/// The frontend wants an acknowledgement (`REPLY_ACK`).
pub const FLAG_NEED_REPLY: u32 = 1 << 3;

/// In `SET_VRING_KICK/CALL/ERR`: no descriptor is passed (polling mode).
pub const VRING_NOFD: u64 = 1 << 8;
pub const VRING_IDX_MASK: u64 = 0xff;

/// Request codes (frontend to backend), as the vhost-user specification numbers them.
pub mod req {
    pub const GET_FEATURES: u32 = 1;
    pub const SET_FEATURES: u32 = 2;
    pub const SET_OWNER: u32 = 3;
    pub const RESET_OWNER: u32 = 4;
    pub const SET_MEM_TABLE: u32 = 5;
    pub const SET_LOG_BASE: u32 = 6;
    pub const SET_LOG_FD: u32 = 7;
    pub const SET_VRING_NUM: u32 = 8;
    pub const SET_VRING_ADDR: u32 = 9;
    pub const SET_VRING_BASE: u32 = 10;
    pub const GET_VRING_BASE: u32 = 11;
    pub const SET_VRING_KICK: u32 = 12;
    pub const SET_VRING_CALL: u32 = 13;
    pub const SET_VRING_ERR: u32 = 14;
    pub const GET_PROTOCOL_FEATURES: u32 = 15;
    pub const SET_PROTOCOL_FEATURES: u32 = 16;
    pub const GET_QUEUE_NUM: u32 = 17;
    pub const SET_VRING_ENABLE: u32 = 18;
    pub const SEND_RARP: u32 = 19;
    pub const NET_SET_MTU: u32 = 20;
    pub const SET_BACKEND_REQ_FD: u32 = 21;
    pub const IOTLB_MSG: u32 = 22;
    pub const SET_VRING_ENDIAN: u32 = 23;
    pub const GET_CONFIG: u32 = 24;
    pub const SET_CONFIG: u32 = 25;
    pub const GET_INFLIGHT_FD: u32 = 31;
    pub const SET_INFLIGHT_FD: u32 = 32;
    pub const RESET_DEVICE: u32 = 34;
    pub const GET_MAX_MEM_SLOTS: u32 = 36;
    pub const ADD_MEM_REG: u32 = 37;
    pub const REM_MEM_REG: u32 = 38;
    pub const SET_STATUS: u32 = 39;
    pub const GET_STATUS: u32 = 40;
}

/// Name of a request code, for logs and errors.
pub fn request_name(code: u32) -> &'static str {
    match code {
        req::GET_FEATURES => "GET_FEATURES",
        req::SET_FEATURES => "SET_FEATURES",
        req::SET_OWNER => "SET_OWNER",
        req::RESET_OWNER => "RESET_OWNER",
        req::SET_MEM_TABLE => "SET_MEM_TABLE",
        req::SET_LOG_BASE => "SET_LOG_BASE",
        req::SET_LOG_FD => "SET_LOG_FD",
        req::SET_VRING_NUM => "SET_VRING_NUM",
        req::SET_VRING_ADDR => "SET_VRING_ADDR",
        req::SET_VRING_BASE => "SET_VRING_BASE",
        req::GET_VRING_BASE => "GET_VRING_BASE",
        req::SET_VRING_KICK => "SET_VRING_KICK",
        req::SET_VRING_CALL => "SET_VRING_CALL",
        req::SET_VRING_ERR => "SET_VRING_ERR",
        req::GET_PROTOCOL_FEATURES => "GET_PROTOCOL_FEATURES",
        req::SET_PROTOCOL_FEATURES => "SET_PROTOCOL_FEATURES",
        req::GET_QUEUE_NUM => "GET_QUEUE_NUM",
        req::SET_VRING_ENABLE => "SET_VRING_ENABLE",
        req::SEND_RARP => "SEND_RARP",
        req::NET_SET_MTU => "NET_SET_MTU",
        req::SET_BACKEND_REQ_FD => "SET_BACKEND_REQ_FD",
        req::IOTLB_MSG => "IOTLB_MSG",
        req::SET_VRING_ENDIAN => "SET_VRING_ENDIAN",
        req::GET_CONFIG => "GET_CONFIG",
        req::SET_CONFIG => "SET_CONFIG",
        req::GET_INFLIGHT_FD => "GET_INFLIGHT_FD",
        req::SET_INFLIGHT_FD => "SET_INFLIGHT_FD",
        req::RESET_DEVICE => "RESET_DEVICE",
        req::GET_MAX_MEM_SLOTS => "GET_MAX_MEM_SLOTS",
        req::ADD_MEM_REG => "ADD_MEM_REG",
        req::REM_MEM_REG => "REM_MEM_REG",
        req::SET_STATUS => "SET_STATUS",
        req::GET_STATUS => "GET_STATUS",
        _ => "unknown",
    }
}

/// Why a message is malformed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum MsgError {
    /// The header's version bits are not 1 (the stream cannot be trusted).
    #[error("bad vhost-user header flags {0:#x} (version must be 1)")]
    BadVersion(u32),
    /// The payload is larger than any real message (the stream cannot be resynchronised).
    #[error("vhost-user payload of {0} bytes is too large")]
    TooLarge(u32),
    /// The payload is shorter than the request needs.
    #[error("{name}: payload of {got} bytes, {need} needed")]
    Short {
        name: &'static str,
        need: usize,
        got: usize,
    },
    /// A memory table with no region or more than the maximum.
    #[error("SET_MEM_TABLE: {0} regions (1 to 8 allowed)")]
    BadRegionCount(u32),
    /// The message needs file descriptors it does not carry.
    #[error("{name}: {need} file descriptors needed, {got} received")]
    MissingFds {
        name: &'static str,
        need: usize,
        got: usize,
    },
}

/// The fixed header of every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub request: u32,
    pub flags: u32,
    pub size: u32,
}

impl Header {
    /// Parses and checks a header: version 1, payload within [`MAX_PAYLOAD`].
    pub fn parse(b: &[u8; HDR_SIZE]) -> Result<Header, MsgError> {
        let h = Header {
            request: le32(&b[0..4]),
            flags: le32(&b[4..8]),
            size: le32(&b[8..12]),
        };
        if h.flags & FLAG_VERSION_MASK != VERSION {
            return Err(MsgError::BadVersion(h.flags));
        }
        if h.size as usize > MAX_PAYLOAD {
            return Err(MsgError::TooLarge(h.size));
        }
        Ok(h)
    }

    pub fn encode(&self) -> [u8; HDR_SIZE] {
        let mut b = [0u8; HDR_SIZE];
        b[0..4].copy_from_slice(&self.request.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.size.to_le_bytes());
        b
    }

    pub fn need_reply(&self) -> bool {
        self.flags & FLAG_NEED_REPLY != 0
    }
}

/// `struct vhost_vring_state`: a ring index and a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VringState {
    pub index: u32,
    pub num: u32,
}

/// `struct vhost_vring_addr`: where a ring's three parts are, as
/// addresses in the frontend's own address space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VringAddr {
    pub index: u32,
    pub flags: u32,
    pub desc: u64,
    pub used: u64,
    pub avail: u64,
    pub log: u64,
}

/// `SET_VRING_KICK/CALL/ERR`: a ring index and whether a descriptor comes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VringFile {
    pub index: u32,
    pub nofd: bool,
}

/// One region of `SET_MEM_TABLE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRegion {
    /// Guest physical address (the address descriptors use).
    pub gpa: u64,
    pub size: u64,
    /// The frontend's virtual address of the region (the address ring addresses use).
    pub uva: u64,
    /// Offset of the region in the file passed with it.
    pub mmap_offset: u64,
}

/// A parsed request. Payload-less requests carry nothing; requests fvs
/// does not offer are kept by code for a clean refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    GetFeatures,
    SetFeatures(u64),
    SetOwner,
    ResetOwner,
    SetMemTable(Vec<MemRegion>),
    SetVringNum(VringState),
    SetVringAddr(VringAddr),
    SetVringBase(VringState),
    GetVringBase(VringState),
    SetVringKick(VringFile),
    SetVringCall(VringFile),
    SetVringErr(VringFile),
    GetProtocolFeatures,
    SetProtocolFeatures(u64),
    GetQueueNum,
    SetVringEnable(VringState),
    SendRarp,
    NetSetMtu(u64),
    ResetDevice,
    GetMaxMemSlots,
    /// A request fvs does not implement (it did not offer the feature that
    /// allows it): refused.
    Unsupported(u32),
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn need(name: &'static str, p: &[u8], n: usize) -> Result<(), MsgError> {
    if p.len() < n {
        Err(MsgError::Short {
            name,
            need: n,
            got: p.len(),
        })
    } else {
        Ok(())
    }
}

fn u64_payload(name: &'static str, p: &[u8]) -> Result<u64, MsgError> {
    need(name, p, 8)?;
    Ok(le64(p))
}

fn state_payload(name: &'static str, p: &[u8]) -> Result<VringState, MsgError> {
    need(name, p, 8)?;
    Ok(VringState {
        index: le32(&p[0..4]),
        num: le32(&p[4..8]),
    })
}

fn file_payload(name: &'static str, p: &[u8], n_fds: usize) -> Result<VringFile, MsgError> {
    let v = u64_payload(name, p)?;
    let f = VringFile {
        index: (v & VRING_IDX_MASK) as u32,
        nofd: v & VRING_NOFD != 0,
    };
    if !f.nofd && n_fds == 0 {
        return Err(MsgError::MissingFds {
            name,
            need: 1,
            got: 0,
        });
    }
    Ok(f)
}

/// Parses the payload of a message whose header is `h`; `n_fds` file
/// descriptors came with it. Never panics, whatever the bytes.
pub fn parse(h: &Header, p: &[u8], n_fds: usize) -> Result<Request, MsgError> {
    let name = request_name(h.request);
    Ok(match h.request {
        req::GET_FEATURES => Request::GetFeatures,
        req::SET_FEATURES => Request::SetFeatures(u64_payload(name, p)?),
        req::SET_OWNER => Request::SetOwner,
        req::RESET_OWNER => Request::ResetOwner,
        req::SET_MEM_TABLE => {
            need(name, p, 8)?;
            let n = le32(&p[0..4]);
            if n == 0 || n as usize > MAX_REGIONS {
                return Err(MsgError::BadRegionCount(n));
            }
            let n = n as usize;
            need(name, p, 8 + n * 32)?;
            if n_fds < n {
                return Err(MsgError::MissingFds {
                    name,
                    need: n,
                    got: n_fds,
                });
            }
            let regions = p[8..8 + n * 32]
                .chunks_exact(32)
                .map(|r| MemRegion {
                    gpa: le64(&r[0..8]),
                    size: le64(&r[8..16]),
                    uva: le64(&r[16..24]),
                    mmap_offset: le64(&r[24..32]),
                })
                .collect();
            Request::SetMemTable(regions)
        }
        req::SET_VRING_NUM => Request::SetVringNum(state_payload(name, p)?),
        req::SET_VRING_ADDR => {
            need(name, p, 40)?;
            Request::SetVringAddr(VringAddr {
                index: le32(&p[0..4]),
                flags: le32(&p[4..8]),
                desc: le64(&p[8..16]),
                used: le64(&p[16..24]),
                avail: le64(&p[24..32]),
                log: le64(&p[32..40]),
            })
        }
        req::SET_VRING_BASE => Request::SetVringBase(state_payload(name, p)?),
        req::GET_VRING_BASE => Request::GetVringBase(state_payload(name, p)?),
        req::SET_VRING_KICK => Request::SetVringKick(file_payload(name, p, n_fds)?),
        req::SET_VRING_CALL => Request::SetVringCall(file_payload(name, p, n_fds)?),
        req::SET_VRING_ERR => Request::SetVringErr(file_payload(name, p, n_fds)?),
        req::GET_PROTOCOL_FEATURES => Request::GetProtocolFeatures,
        req::SET_PROTOCOL_FEATURES => Request::SetProtocolFeatures(u64_payload(name, p)?),
        req::GET_QUEUE_NUM => Request::GetQueueNum,
        req::SET_VRING_ENABLE => Request::SetVringEnable(state_payload(name, p)?),
        req::SEND_RARP => Request::SendRarp,
        req::NET_SET_MTU => Request::NetSetMtu(u64_payload(name, p)?),
        req::RESET_DEVICE => Request::ResetDevice,
        req::GET_MAX_MEM_SLOTS => Request::GetMaxMemSlots,
        other => Request::Unsupported(other),
    })
}

/// A reply: the header (with [`FLAG_REPLY`]) and up to 8 bytes of payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    buf: [u8; HDR_SIZE + 8],
    len: usize,
}

impl Reply {
    fn with(request: u32, payload: &[u8]) -> Reply {
        let mut buf = [0u8; HDR_SIZE + 8];
        let n = payload.len().min(8);
        let h = Header {
            request,
            flags: VERSION | FLAG_REPLY,
            size: n as u32,
        };
        buf[..HDR_SIZE].copy_from_slice(&h.encode());
        buf[HDR_SIZE..HDR_SIZE + n].copy_from_slice(&payload[..n]);
        Reply {
            buf,
            len: HDR_SIZE + n,
        }
    }

    /// A reply carrying a `u64` (features, queue count, or a `REPLY_ACK`
    /// status: 0 for success).
    pub fn u64(request: u32, v: u64) -> Reply {
        Reply::with(request, &v.to_le_bytes())
    }

    /// A reply carrying a `vhost_vring_state`.
    pub fn state(request: u32, s: VringState) -> Reply {
        let mut p = [0u8; 8];
        p[0..4].copy_from_slice(&s.index.to_le_bytes());
        p[4..8].copy_from_slice(&s.num.to_le_bytes());
        Reply::with(request, &p)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Encodes a request (for a frontend: tests and tools).
pub fn encode_request(request: u32, flags: u32, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        request,
        flags: VERSION | flags,
        size: payload.len() as u32,
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Encodes a `vhost_vring_state` payload.
pub fn state_bytes(index: u32, num: u32) -> [u8; 8] {
    let mut p = [0u8; 8];
    p[0..4].copy_from_slice(&index.to_le_bytes());
    p[4..8].copy_from_slice(&num.to_le_bytes());
    p
}

/// Encodes a `vhost_vring_addr` payload.
pub fn addr_bytes(a: &VringAddr) -> [u8; 40] {
    let mut p = [0u8; 40];
    p[0..4].copy_from_slice(&a.index.to_le_bytes());
    p[4..8].copy_from_slice(&a.flags.to_le_bytes());
    p[8..16].copy_from_slice(&a.desc.to_le_bytes());
    p[16..24].copy_from_slice(&a.used.to_le_bytes());
    p[24..32].copy_from_slice(&a.avail.to_le_bytes());
    p[32..40].copy_from_slice(&a.log.to_le_bytes());
    p
}

/// Encodes a memory table payload.
pub fn mem_table_bytes(regions: &[MemRegion]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + regions.len() * 32);
    p.extend_from_slice(&(regions.len() as u32).to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    for r in regions {
        for v in [r.gpa, r.size, r.uva, r.mmap_offset] {
            p.extend_from_slice(&v.to_le_bytes());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(request: u32, size: u32) -> Header {
        Header {
            request,
            flags: VERSION,
            size,
        }
    }

    #[test]
    fn header_round_trip_and_checks() {
        let h = Header {
            request: req::SET_VRING_NUM,
            flags: VERSION | FLAG_NEED_REPLY,
            size: 8,
        };
        assert_eq!(Header::parse(&h.encode()), Ok(h));
        assert!(h.need_reply());
        let mut bad = h.encode();
        bad[4] = 2;
        assert_eq!(Header::parse(&bad), Err(MsgError::BadVersion(2)));
        let big = Header {
            size: MAX_PAYLOAD as u32 + 1,
            ..h
        };
        assert!(matches!(
            Header::parse(&big.encode()),
            Err(MsgError::TooLarge(_))
        ));
    }

    #[test]
    fn payloads_parse() {
        let p = state_bytes(3, 256);
        assert_eq!(
            parse(&hdr(req::SET_VRING_NUM, 8), &p, 0),
            Ok(Request::SetVringNum(VringState { index: 3, num: 256 }))
        );
        let a = VringAddr {
            index: 1,
            flags: 0,
            desc: 0x1000,
            used: 0x3000,
            avail: 0x2000,
            log: 0,
        };
        assert_eq!(
            parse(&hdr(req::SET_VRING_ADDR, 40), &addr_bytes(&a), 0),
            Ok(Request::SetVringAddr(a))
        );
        let regions = [MemRegion {
            gpa: 0,
            size: 1 << 20,
            uva: 0x7f00_0000_0000,
            mmap_offset: 0,
        }];
        let p = mem_table_bytes(&regions);
        assert_eq!(
            parse(&hdr(req::SET_MEM_TABLE, p.len() as u32), &p, 1),
            Ok(Request::SetMemTable(regions.to_vec()))
        );
        assert!(matches!(
            parse(&hdr(req::SET_MEM_TABLE, p.len() as u32), &p, 0),
            Err(MsgError::MissingFds { .. })
        ));
        let kick = (2u64 | VRING_NOFD).to_le_bytes();
        assert_eq!(
            parse(&hdr(req::SET_VRING_KICK, 8), &kick, 0),
            Ok(Request::SetVringKick(VringFile {
                index: 2,
                nofd: true
            }))
        );
        assert!(matches!(
            parse(&hdr(req::SET_VRING_CALL, 8), &2u64.to_le_bytes(), 0),
            Err(MsgError::MissingFds { .. })
        ));
        assert!(matches!(
            parse(&hdr(req::SET_FEATURES, 4), &[0; 4], 0),
            Err(MsgError::Short { .. })
        ));
        assert_eq!(parse(&hdr(99, 0), &[], 0), Ok(Request::Unsupported(99)));
    }

    #[test]
    fn replies_are_version_one_with_reply_flag() {
        let r = Reply::u64(req::GET_FEATURES, 0x1234);
        let b = r.as_bytes();
        assert_eq!(b.len(), 20);
        let mut h = [0u8; HDR_SIZE];
        h.copy_from_slice(&b[..HDR_SIZE]);
        let h = Header::parse(&h).unwrap();
        assert_eq!(h.flags, VERSION | FLAG_REPLY);
        assert_eq!(h.size, 8);
        assert_eq!(le64(&b[12..20]), 0x1234);
    }
}
