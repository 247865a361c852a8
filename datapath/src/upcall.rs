//! The datapath's interface to whoever decides what packets do (ofproto).
//! The datapath never sees OpenFlow: it asks for a translation on a cache
//! miss, asks which installed megaflows a change made stale, and credits
//! traffic back to what the decisions depended on.

use thiserror::Error;

use crate::actions::{DpAction, SlowPath};
use crate::dpcls::FlowCounters;
use crate::key::FlowKey;
use crate::packet::Packet;

/// A decision for a packet and every packet like it.
#[derive(Debug)]
pub struct Translation<D> {
    pub actions: Vec<DpAction>,
    /// The key bits the decision looked at: the megaflow's mask.
    pub mask: FlowKey,
    /// What the decision depended on (rules, learned MACs), for revalidation
    /// and statistics.
    pub deps: D,
    /// Version of the decision inputs the translation used.
    pub version: u64,
}

/// Why a packet could not be translated (it is dropped and counted).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UpcallError {
    #[error("packet from unknown datapath port {0}")]
    UnknownPort(u32),
    #[error("translation exceeded {0} resubmits")]
    TooManyResubmits(u32),
    #[error("translation failed: {0}")]
    Other(String),
}

/// Implemented by the control plane.
pub trait Upcall: Send + Sync + 'static {
    /// Per-megaflow record of what its decision depended on.
    type Deps: Send + 'static;
    /// A set of changes to decision inputs.
    type Changes;

    /// Version of the decision inputs; it moves on every change that can
    /// make an installed megaflow stale.
    fn version(&self) -> u64;

    /// Decides what to do with `pkt` (whose key is `key`).
    fn translate(
        &self,
        key: &FlowKey,
        pkt: &Packet,
    ) -> Result<Translation<Self::Deps>, UpcallError>;

    /// The changes made after `version`, and the version they lead to.
    fn changes_since(&self, version: u64) -> (Self::Changes, u64);

    /// Whether `changes` make a megaflow stale (it is then removed). Only
    /// changes newer than `flow_version` (the version it was translated
    /// against) concern it.
    fn is_stale(
        &self,
        changes: &Self::Changes,
        key: &FlowKey,
        mask: &FlowKey,
        deps: &Self::Deps,
        flow_version: u64,
    ) -> bool;

    /// Credits traffic that hit a megaflow to what its decision depended on.
    fn credit(&self, deps: &Self::Deps, delta: &FlowCounters);

    /// Takes a packet a `Userspace` action sent to the slow path.
    fn slow_path(&self, pkt: &Packet, what: &SlowPath);
}
