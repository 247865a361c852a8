//! fvs hot path: packet buffers and their pool, flow key extraction, the
//! exact-match cache, the megaflow classifier, datapath actions and the
//! poll-mode threads that run them.
//!
//! This crate knows nothing of OpenFlow: decisions come from an [`Upcall`]
//! implementation (ofproto) and are cached here as megaflows.

pub mod actions;
pub mod csum;
pub mod dpcls;
pub mod dpif;
pub mod emc;
pub mod extract;
pub mod hash;
pub mod key;
pub mod limit;
pub mod netdev;
pub mod odp;
pub mod packet;
pub mod pmd;
pub mod prefetch;
pub mod ring;
pub mod tunnel;
pub mod upcall;

pub use actions::DpAction;
pub use key::FlowKey;
pub use packet::{Batch, Packet, PacketPool};
pub use upcall::{Translation, Upcall, UpcallError};
