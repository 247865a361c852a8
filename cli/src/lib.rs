//! fvs binaries and what they share: the configuration database, the
//! `fvs-vsctl` command engine, the daemon, and the control socket.

pub mod args;
pub mod cni;
pub mod daemon;
pub mod db;
pub mod unixctl;
pub mod vsctl;
