//! The vhost-user backend protocol: what each request does to the device
//! (features, memory table, rings) and what is replied. Runs on the port's
//! control thread; changes to a ring are made under the ring's lock, so
//! the PMD threads see a ring either before or after a change, never in
//! between.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::device::{Shared, VringState, MAX_VRINGS};
use super::memory::GuestMemory;
use super::msg::{self, req, Header, Reply, Request, VringState as StateMsg};
use super::vring::{Ring, RingError, MAX_QUEUE_SIZE, USED_F_NO_NOTIFY};
use super::MAX_QUEUE_PAIRS;

/// Virtio feature bits.
pub mod feature {
    pub const NET_F_MTU: u64 = 1 << 3;
    pub const NET_F_MRG_RXBUF: u64 = 1 << 15;
    pub const NET_F_CTRL_VQ: u64 = 1 << 17;
    pub const NET_F_MQ: u64 = 1 << 22;
    pub const F_ANY_LAYOUT: u64 = 1 << 27;
    pub const RING_F_INDIRECT_DESC: u64 = 1 << 28;
    pub const RING_F_EVENT_IDX: u64 = 1 << 29;
    /// vhost-user: the protocol-features handshake is available.
    pub const PROTOCOL_FEATURES: u64 = 1 << 30;
    pub const F_VERSION_1: u64 = 1 << 32;
    pub const F_IN_ORDER: u64 = 1 << 35;
}

/// vhost-user protocol feature bits.
pub mod protocol {
    pub const MQ: u64 = 1 << 0;
    pub const REPLY_ACK: u64 = 1 << 3;
    pub const NET_MTU: u64 = 1 << 4;
}

/// What fvs offers. Checksum and segmentation offloads are not offered
/// (frames cross the switch complete); packed rings are not offered.
pub const DEVICE_FEATURES: u64 = feature::NET_F_MTU
    | feature::NET_F_MRG_RXBUF
    | feature::NET_F_CTRL_VQ
    | feature::NET_F_MQ
    | feature::F_ANY_LAYOUT
    | feature::RING_F_INDIRECT_DESC
    | feature::RING_F_EVENT_IDX
    | feature::PROTOCOL_FEATURES
    | feature::F_VERSION_1
    | feature::F_IN_ORDER;

pub const PROTOCOL_FEATURES: u64 = protocol::MQ | protocol::REPLY_ACK | protocol::NET_MTU;

/// The protocol state of one connection.
pub struct Backend {
    shared: Arc<Shared>,
    features: u64,
    protocol: u64,
    mem: Option<Arc<GuestMemory>>,
}

impl Backend {
    pub fn new(shared: Arc<Shared>) -> Backend {
        Backend {
            shared,
            features: 0,
            protocol: 0,
            mem: None,
        }
    }

    /// Handles one message; returns the reply to send, if any. `Err` is a
    /// description of what the frontend got wrong (the connection goes on;
    /// a refused request is answered with a failure when it asked for an
    /// acknowledgement).
    pub fn handle(
        &mut self,
        h: &Header,
        payload: &[u8],
        fds: Vec<OwnedFd>,
    ) -> (Option<Reply>, Result<(), String>) {
        let request = match msg::parse(h, payload, fds.len()) {
            Ok(r) => r,
            Err(e) => return (self.ack(h, false), Err(e.to_string())),
        };
        let r = self.apply(h, request, fds);
        match r {
            Ok(Some(reply)) => (Some(reply), Ok(())),
            Ok(None) => (self.ack(h, true), Ok(())),
            Err(e) => {
                // A GET that failed still owes a reply: an empty one would
                // desynchronise the frontend, so report zero.
                let reply = match h.request {
                    req::GET_VRING_BASE => {
                        Some(Reply::state(h.request, StateMsg { index: 0, num: 0 }))
                    }
                    _ => self.ack(h, false),
                };
                (reply, Err(e))
            }
        }
    }

    /// The REPLY_ACK answer, when negotiated and asked for.
    fn ack(&self, h: &Header, ok: bool) -> Option<Reply> {
        (self.protocol & protocol::REPLY_ACK != 0 && h.need_reply())
            .then(|| Reply::u64(h.request, u64::from(!ok)))
    }

    fn vring(&self, index: u32) -> Result<usize, String> {
        let i = index as usize;
        if i < MAX_VRINGS {
            Ok(i)
        } else {
            Err(format!(
                "virtqueue {index} does not exist (at most {MAX_QUEUE_PAIRS} queue pairs)"
            ))
        }
    }

    fn apply(
        &mut self,
        h: &Header,
        r: Request,
        mut fds: Vec<OwnedFd>,
    ) -> Result<Option<Reply>, String> {
        let code = h.request;
        match r {
            Request::GetFeatures => Ok(Some(Reply::u64(code, DEVICE_FEATURES))),
            Request::GetProtocolFeatures => Ok(Some(Reply::u64(code, PROTOCOL_FEATURES))),
            Request::GetQueueNum => Ok(Some(Reply::u64(code, MAX_QUEUE_PAIRS as u64))),
            Request::GetMaxMemSlots => Ok(Some(Reply::u64(code, msg::MAX_REGIONS as u64))),
            Request::SetOwner | Request::SendRarp => Ok(None),
            Request::ResetOwner | Request::ResetDevice => {
                self.reset();
                Ok(None)
            }
            Request::SetFeatures(f) => {
                let unknown = f & !DEVICE_FEATURES;
                if unknown != 0 {
                    return Err(format!(
                        "SET_FEATURES: features {unknown:#x} were not offered"
                    ));
                }
                self.features = f;
                self.shared.info().features = f;
                for i in 0..MAX_VRINGS {
                    let mut g = self.shared.vrings[i].lock();
                    self.apply_features(&mut g);
                    g.refresh();
                }
                Ok(None)
            }
            Request::SetProtocolFeatures(p) => {
                let unknown = p & !PROTOCOL_FEATURES;
                if unknown != 0 {
                    return Err(format!(
                        "SET_PROTOCOL_FEATURES: features {unknown:#x} were not offered"
                    ));
                }
                self.protocol = p;
                self.shared.info().protocol_features = p;
                Ok(None)
            }
            Request::SetMemTable(regions) => {
                let mem =
                    GuestMemory::map(&regions, &fds).map_err(|e| format!("SET_MEM_TABLE: {e}"))?;
                drop(fds);
                self.mem = Some(Arc::new(mem));
                for cell in &self.shared.vrings {
                    let mut g = cell.lock();
                    // A ring whose addresses are not in the new table waits
                    // for its SET_VRING_ADDR (not ready until then).
                    let _ = locate(&mut g, &self.mem);
                    g.refresh();
                }
                self.shared.remap_tx();
                // The old table is unmapped here: no ring holds it any more
                // (each was re-located under its lock above).
                Ok(None)
            }
            Request::SetVringNum(s) => {
                let i = self.vring(s.index)?;
                if s.num == 0 || s.num > MAX_QUEUE_SIZE || !s.num.is_power_of_two() {
                    return Err(format!(
                        "SET_VRING_NUM: virtqueue {i}: {}",
                        RingError::BadSize(s.num)
                    ));
                }
                self.shared.info().vring_sizes[i] = s.num;
                self.with_ring(i, |g, mem| {
                    g.size = s.num;
                    locate(g, mem)
                })
            }
            Request::SetVringAddr(a) => {
                let i = self.vring(a.index)?;
                self.with_ring(i, |g, mem| {
                    g.addr = Some(a);
                    locate(g, mem)
                })
            }
            Request::SetVringBase(s) => {
                let i = self.vring(s.index)?;
                let mut g = self.shared.vrings[i].lock();
                g.last_avail = s.num as u16;
                g.last_used = s.num as u16;
                g.signalled_valid = false;
                g.broken = false;
                g.refresh();
                Ok(None)
            }
            Request::GetVringBase(s) => {
                let i = self.vring(s.index)?;
                let base = {
                    let mut g = self.shared.vrings[i].lock();
                    // The ring stops: after this reply the frontend may
                    // reuse its memory.
                    g.started = false;
                    g.kick = None;
                    g.call = None;
                    g.refresh();
                    g.last_avail
                };
                self.shared.remap_tx();
                Ok(Some(Reply::state(
                    code,
                    StateMsg {
                        index: s.index,
                        num: u32::from(base),
                    },
                )))
            }
            Request::SetVringKick(f) => {
                let i = self.vring(f.index)?;
                let fd = if f.nofd { None } else { fds.pop() };
                let no_protocol = self.features & feature::PROTOCOL_FEATURES == 0;
                let r = self.with_ring(i, |g, mem| {
                    g.kick = fd;
                    g.started = true;
                    g.broken = false;
                    g.signalled_valid = false;
                    if no_protocol {
                        g.enabled = true;
                    }
                    let r = locate(g, mem);
                    start(g);
                    r
                });
                self.shared.remap_tx();
                r
            }
            Request::SetVringCall(f) => {
                let i = self.vring(f.index)?;
                let fd = if f.nofd { None } else { fds.pop() };
                let mut g = self.shared.vrings[i].lock();
                g.call = fd;
                g.signalled_valid = false;
                Ok(None)
            }
            Request::SetVringErr(f) => {
                let i = self.vring(f.index)?;
                let fd = if f.nofd { None } else { fds.pop() };
                self.shared.vrings[i].lock().err = fd;
                Ok(None)
            }
            Request::SetVringEnable(s) => {
                let i = self.vring(s.index)?;
                {
                    let mut g = self.shared.vrings[i].lock();
                    g.enabled = s.num != 0;
                    g.refresh();
                }
                self.shared.remap_tx();
                Ok(None)
            }
            Request::NetSetMtu(m) => {
                if !(68..=65535).contains(&m) {
                    return Err(format!("NET_SET_MTU: {m} is not a valid MTU"));
                }
                self.shared.info().guest_mtu = Some(m);
                Ok(None)
            }
            Request::Unsupported(c) => Err(format!(
                "request {c} ({}) is not supported (its feature was not offered)",
                msg::request_name(c)
            )),
        }
    }

    /// Runs `f` on ring `i` under its lock, then republishes its readiness.
    fn with_ring(
        &self,
        i: usize,
        f: impl FnOnce(&mut VringState, &Option<Arc<GuestMemory>>) -> Result<(), RingError>,
    ) -> Result<Option<Reply>, String> {
        let cell = &self.shared.vrings[i];
        let mut g = cell.lock();
        let r = f(&mut g, &self.mem);
        g.refresh();
        drop(g);
        r.map(|_| None).map_err(|e| {
            cell.set_fault(e);
            format!("virtqueue {i}: {e}")
        })
    }

    fn apply_features(&self, g: &mut VringState) {
        let f = self.features;
        g.event_idx = f & feature::RING_F_EVENT_IDX != 0;
        g.indirect = f & feature::RING_F_INDIRECT_DESC != 0;
        g.mrg_rxbuf = f & feature::NET_F_MRG_RXBUF != 0;
        g.hdr_len = if f & (feature::F_VERSION_1 | feature::NET_F_MRG_RXBUF) != 0 {
            12
        } else {
            10
        };
    }

    /// Back to the state of a new connection: every ring stopped and
    /// forgotten, the memory table unmapped.
    pub fn reset(&mut self) {
        for cell in &self.shared.vrings {
            let mut g = cell.lock();
            g.reset();
            g.refresh();
        }
        self.shared.remap_tx();
        self.mem = None;
        self.features = 0;
        let mut info = self.shared.info();
        info.features = 0;
        info.vring_sizes = [0; MAX_VRINGS];
    }

    pub fn features(&self) -> u64 {
        self.features
    }
}

/// (Re)locates the ring in the current memory table, when its size,
/// addresses and the table are all known.
fn locate(g: &mut VringState, mem: &Option<Arc<GuestMemory>>) -> Result<(), RingError> {
    g.ring = None;
    let (Some(a), Some(m)) = (g.addr, mem) else {
        return Ok(());
    };
    if g.size == 0 {
        return Ok(());
    }
    g.ring = Some(Ring::new(m.clone(), &a, g.size)?);
    if g.started {
        start(g);
    }
    Ok(())
}

/// A ring starts: adopt the used index found in memory when it disagrees
/// with the base (a frontend that kept its rings across our restart sends
/// base 0), and ask the driver not to kick (we poll).
fn start(g: &mut VringState) {
    let Some(r) = g.ring.as_ref() else {
        return;
    };
    let used = r.used_idx();
    if used != g.last_used {
        g.last_used = used;
        g.last_avail = used;
    }
    if !g.event_idx {
        r.set_used_flags(USED_F_NO_NOTIFY);
    }
}
