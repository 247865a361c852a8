//! Translation of output to tunnel ports and of packets for a local tunnel
//! endpoint: OVS's `native_tunnel_output()` and `terminate_native_tunnel()`.
//!
//! Output to a VXLAN port: the route to the remote endpoint names the
//! underlay device (a bridge's internal port holding a local address); its
//! MAC and the next hop's (from the neighbour cache) complete the outer
//! header, which is built here once. The encapsulated packet then goes
//! through the underlay bridge's pipeline as if its internal port had sent
//! it, and all of that becomes `clone(tnl_push(…),<underlay actions>)`.
//! The underlay translation looks only at the outer header, which is the
//! same for every packet of the megaflow: its wildcards are not the
//! megaflow's.
//!
//! Output to a port whose device holds a local address: a UDP packet to
//! that address and a listening tunnel UDP port, sent to the device's MAC,
//! is decapsulated instead (`tnl_pop`); ARP replies and neighbour
//! advertisements for the device's addresses (and gratuitous ARPs from its
//! subnets) teach the neighbour cache.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fvs_datapath::actions::DpAction;
use fvs_datapath::key;
use fvs_datapath::tunnel::{HeaderParams, TnlHeader, TnlPush};

use super::{mac_bytes, NoteKind, TraceEvent, Xlate, MAX_DEPTH};
use crate::bridge::Bridge;
use crate::fields::FieldId;
use crate::flow::{ofs, OfFlow};
use crate::ofproto::Change;
use crate::tunnel::{format_mac, Inherit, IpDev, Key, Local, Remote, TnlPort};

const M32: u128 = 0xffff_ffff;

/// What the outer header of one tunnel output is made of.
struct Outer {
    dst: IpAddr,
    src: Option<IpAddr>,
    vni: u64,
    tos: u8,
    ttl: u8,
}

impl<'a> Xlate<'a> {
    /// Lets translation reach the other bridges (the underlay of tunnels).
    pub(crate) fn with_bridges(mut self, bridges: &'a BTreeMap<u32, Bridge>) -> Xlate<'a> {
        self.bridges = Some(bridges);
        self
    }

    /// Output to `ofport` when it is a tunnel port, or a port holding a
    /// local tunnel endpoint; returns whether it was handled here.
    pub(super) fn tunnel_hook(&mut self, ofport: u16) -> bool {
        if let Some(t) = self.of.tunnels.port(self.br.id, ofport) {
            self.tunnel_output(&t);
            return true;
        }
        let Some(name) = self.br.ports.get(&ofport).map(|p| p.name.clone()) else {
            return false;
        };
        match self.of.tunnels.device(&name) {
            Some(dev) => {
                // Whether it terminates tunnels depends on its addresses.
                self.deps.tnl.used = true;
                !dev.addrs.is_empty() && self.terminate_native_tunnel(&dev)
            }
            None => false,
        }
    }

    /// Whether ports `a` and `b` are tunnels of the same split-horizon
    /// group (what one receives is never sent to the other by NORMAL or a
    /// flood).
    pub(super) fn split_horizon(&self, a: u16, b: u16) -> bool {
        let group = |p: u16| self.of.tunnels.split_horizon(self.br.id, p);
        match group(a) {
            Some(g) => group(b).as_ref() == Some(&g),
            None => false,
        }
    }

    // ---- encapsulation ----

    fn tunnel_output(&mut self, t: &TnlPort) {
        self.note(NoteKind::Detail, || "output to native tunnel".into());
        self.deps.tnl.used = true;
        let sent = match self.tunnel_params(t) {
            Some(o) => self.native_tunnel_output(t, &o),
            None => {
                self.note(NoteKind::Warn, || "native tunnel routing failed".into());
                false
            }
        };
        self.deps.tnl.tx.push((t.stats.clone(), sent));
    }

    /// The tunnel's outer addresses, key, TOS and TTL for this flow (OVS's
    /// `tnl_port_send()`), reading the flow where the configuration says
    /// `flow` or `inherit`.
    fn tunnel_params(&mut self, t: &TnlPort) -> Option<Outer> {
        let flow_addr = |x: &mut Self, v4: FieldId, v6: FieldId| -> Option<IpAddr> {
            let a = x.read(v4, M32) as u32;
            if a != 0 {
                return Some(IpAddr::V4(Ipv4Addr::from(a)));
            }
            let a = x.read(v6, u128::MAX);
            (a != 0).then(|| IpAddr::V6(Ipv6Addr::from(a)))
        };
        let dst = match t.cfg.remote {
            Remote::Ip(ip) => ip,
            Remote::Flow => flow_addr(self, FieldId::TunDst, FieldId::TunIpv6Dst)?,
        };
        let src = match t.cfg.local {
            Local::Auto => None,
            Local::Ip(ip) => Some(ip),
            Local::Flow => flow_addr(self, FieldId::TunSrc, FieldId::TunIpv6Src),
        };
        let vni = match t.cfg.out_key {
            Key::Fixed(k) => k,
            Key::Flow => self.read(FieldId::TunId, u128::from(u64::MAX)) as u64,
        };
        let ip = self.prereq(crate::fields::Prereq::IpAny);
        let mut tos = match t.cfg.tos {
            Inherit::Fixed(v) => v,
            Inherit::Inherit if ip => self.read(FieldId::IpTos, 0xfc) as u8,
            Inherit::Inherit => 0,
        };
        if ip {
            // The inner ECN goes outside; congestion experienced becomes ECT(0).
            let ecn = self.read(FieldId::IpEcn, 0x3) as u8;
            tos = (tos & 0xfc) | if ecn == 3 { 2 } else { ecn };
        }
        let ttl = match t.cfg.ttl {
            Inherit::Fixed(v) => v,
            Inherit::Inherit if ip => self.read(FieldId::IpTtl, 0xff) as u8,
            Inherit::Inherit => crate::tunnel::DEFAULT_TTL,
        };
        Some(Outer {
            dst,
            src,
            vni,
            tos,
            ttl,
        })
    }

    /// The underlay bridge port named `dev`: preferably the port of that
    /// name on the bridge of that name (its internal port).
    fn find_out_dev(&self, dev: &str) -> Option<(&'a Bridge, u16, u32)> {
        let bridges = self.bridges?;
        let on = |b: &'a Bridge| {
            b.ports()
                .find(|p| p.name == dev)
                .map(|p| (b, p.ofport, p.odp_port))
        };
        bridges
            .values()
            .find(|b| b.name == dev)
            .and_then(on)
            .or_else(|| bridges.values().find_map(on))
    }

    fn native_tunnel_output(&mut self, t: &TnlPort, o: &Outer) -> bool {
        // Rewrites of the inner packet happen before it is encapsulated.
        self.commit();
        let is_local = self.of.tunnels.devices().iter().any(|d| d.has_addr(o.dst));
        if is_local {
            self.note(NoteKind::Warn, || "Not tunneling to our own address".into());
            return false;
        }
        let Some(route) = self.of.tunnels.route_lookup(o.dst, 0) else {
            self.note(NoteKind::Warn, || "native tunnel routing failed".into());
            return false;
        };
        let nexthop = route.gw.unwrap_or(o.dst);
        let Some((obr, oport, odp)) = self.find_out_dev(&route.dev) else {
            self.note(NoteKind::Warn, || "native tunnel routing failed".into());
            return false;
        };
        self.note(NoteKind::Detail, || {
            format!("tunneling to {nexthop} via {}", route.dev)
        });
        let dev = match self.of.tunnels.device(&route.dev) {
            Some(d) if d.mac != [0; 6] => d,
            _ => {
                self.note(NoteKind::Warn, || {
                    "tunnel output device lacks Ethernet address".into()
                });
                return false;
            }
        };
        let src = o.src.unwrap_or(route.src);
        let Some(dmac) = self.of.tunnels.neigh_lookup(&obr.name, nexthop) else {
            let what = if nexthop.is_ipv4() { "ARP" } else { "ND" };
            self.note(NoteKind::Detail, || {
                format!(
                    "neighbor cache miss for {nexthop} on bridge {}, sending {what} request",
                    obr.name
                )
            });
            if self.side_effects {
                self.of
                    .tunnels
                    .request_neighbour(&obr.name, odp, dev.mac, src, nexthop);
            }
            self.deps.tnl.neigh_miss = true;
            return false;
        };
        self.deps.tnl.neighs.push((obr.name.clone(), nexthop));
        self.note(NoteKind::Detail, || {
            format!(
                "tunneling from {} {src} to {} {nexthop}",
                format_mac(&dev.mac),
                format_mac(&dmac)
            )
        });
        let params = HeaderParams {
            eth_src: dev.mac,
            eth_dst: dmac,
            ip_src: src,
            ip_dst: o.dst,
            tos: o.tos,
            ttl: o.ttl,
            df: t.cfg.df,
            dst_port: t.cfg.dst_port,
            vni: u32::try_from(o.vni).unwrap_or(u32::MAX),
            udp_csum: t.cfg.csum,
        };
        let header = match TnlHeader::vxlan(&params) {
            Ok(h) => h,
            Err(_) => {
                self.note(NoteKind::Warn, || {
                    "native tunnel header build failed".into()
                });
                return false;
            }
        };
        let push = TnlPush {
            tnl_port: t.vport,
            out_port: odp,
            header,
            max_ip_len: u16::try_from(dev.mtu).unwrap_or(u16::MAX),
        };
        let outer = outer_flow(&params, oport);
        let post = self.underlay(obr, outer);
        if post.is_empty() {
            return false;
        }
        let mut acts = Vec::with_capacity(post.len() + 1);
        acts.push(DpAction::TunnelPush(Box::new(push)));
        acts.extend(post);
        self.actions.push(DpAction::Clone(acts.into()));
        true
    }

    /// Translates the encapsulated packet `outer` in the underlay bridge
    /// `br` (as received on its port `outer.in_port()`), without learning
    /// and with wildcards of its own; returns its actions.
    fn underlay(&mut self, br: &'a Bridge, outer: OfFlow) -> Vec<DpAction> {
        if self.depth >= MAX_DEPTH {
            self.note(NoteKind::Error, || {
                format!("over max translation depth {MAX_DEPTH}")
            });
            return Vec::new();
        }
        if let Some(t) = &mut self.trace {
            t.push(TraceEvent::Bridge {
                depth: self.depth,
                name: br.name.clone(),
            });
        }
        let saved_br = std::mem::replace(&mut self.br, br);
        let saved = (
            self.flow,
            self.base,
            self.orig,
            self.wc,
            self.known,
            self.dirty,
            self.table_id,
            self.cookie,
            self.push_tpid,
            self.side_effects,
        );
        let saved_error = self.error.take();
        let saved_actions = std::mem::take(&mut self.actions);
        let (n_tables, n_macs, learned) = (
            self.deps.tables.len(),
            self.deps.macs.len(),
            self.deps.learned,
        );
        self.flow = outer;
        self.base = outer;
        self.orig = outer;
        self.wc = OfFlow::ZERO;
        self.known = OfFlow::ONES;
        self.dirty = OfFlow::ZERO;
        self.push_tpid = None;
        self.side_effects = false;
        self.depth += 1;
        self.pipeline(0);
        self.depth -= 1;
        self.stop_list = false;
        let acts = std::mem::replace(&mut self.actions, saved_actions);
        (
            self.flow,
            self.base,
            self.orig,
            self.wc,
            self.known,
            self.dirty,
            self.table_id,
            self.cookie,
            self.push_tpid,
            self.side_effects,
        ) = saved;
        // Errors in the underlay bridge do not fail the overlay's translation.
        self.error = saved_error;
        self.br = saved_br;
        self.deps.tables.truncate(n_tables);
        self.deps.macs.truncate(n_macs);
        self.deps.learned = learned;
        if !self.deps.tnl.bridges.contains(&br.id) {
            self.deps.tnl.bridges.push(br.id);
        }
        acts
    }

    // ---- termination and snooping ----

    fn terminate_native_tunnel(&mut self, dev: &IpDev) -> bool {
        let dl_type = self.read(FieldId::EthType, 0xffff) as u16;
        match dl_type {
            key::ETH_TYPE_IP | key::ETH_TYPE_IPV6 => {
                let proto = self.read(FieldId::IpProto, 0xff) as u8;
                if proto == key::IPPROTO_ICMPV6 && dl_type == key::ETH_TYPE_IPV6 {
                    self.snoop_nd(dev);
                    return false;
                }
                if proto != key::IPPROTO_UDP || self.read(FieldId::IpFrag, 0x3) != 0 {
                    return false;
                }
                let (dst, src) = if dl_type == key::ETH_TYPE_IP {
                    let d = self.read(FieldId::Ipv4Dst, M32) as u32;
                    let s = self.flow.get(FieldId::Ipv4Src) as u32;
                    (IpAddr::V4(d.into()), IpAddr::V4(s.into()))
                } else {
                    let d = self.read(FieldId::Ipv6Dst, u128::MAX);
                    let s = self.flow.get(FieldId::Ipv6Src);
                    (IpAddr::V6(d.into()), IpAddr::V6(s.into()))
                };
                if !dev.has_addr(dst) {
                    return false;
                }
                let tp_dst = self.read(FieldId::UdpDst, 0xffff) as u16;
                let Some(vport) = self.of.tunnels.listening(tp_dst) else {
                    return false;
                };
                let dl_dst = mac_bytes(self.read(FieldId::EthDst, u128::MAX));
                if dl_dst != dev.mac {
                    return false;
                }
                self.commit();
                self.actions.push(DpAction::TunnelPop(vport));
                self.deps.tnl.used = true;
                if self.side_effects {
                    // The sender's MAC for its address: replies need no ARP.
                    let smac = mac_bytes(self.flow.get(FieldId::EthSrc));
                    self.neigh_learn(src, smac);
                }
                true
            }
            key::ETH_TYPE_ARP => {
                self.snoop_arp(dev);
                false
            }
            _ => false,
        }
    }

    fn neigh_learn(&mut self, ip: IpAddr, mac: [u8; 6]) {
        if mac == [0; 6] || mac[0] & 1 != 0 {
            return;
        }
        let br = self.br.name.clone();
        if self.of.tunnels.neigh_set(&br, ip, mac) {
            self.of.log_changes(vec![Change::Tunnel]);
        }
    }

    /// ARP replies to one of `dev`'s addresses, and gratuitous ARPs from its
    /// subnets (OVS's `tnl_arp_snoop()`).
    fn snoop_arp(&mut self, dev: &IpDev) {
        let op = self.read(FieldId::ArpOp, 0xff) as u8;
        let spa = IpAddr::V4((self.read(FieldId::ArpSpa, M32) as u32).into());
        let tpa = IpAddr::V4((self.read(FieldId::ArpTpa, M32) as u32).into());
        let garp = spa == tpa;
        if op != 2 && !garp {
            return;
        }
        let sha = mac_bytes(self.read(FieldId::ArpSha, u128::MAX));
        let for_us = if garp {
            dev.on_link(spa)
        } else {
            dev.has_addr(tpa)
        };
        if for_us && self.side_effects {
            self.neigh_learn(spa, sha);
        }
    }

    /// Neighbour advertisements with a target link-layer address, sent to
    /// one of `dev`'s addresses or to a multicast group (OVS's `tnl_nd_snoop()`).
    fn snoop_nd(&mut self, dev: &IpDev) {
        let t = self.read(FieldId::Icmpv6Type, 0xff) as u8;
        let c = self.read(FieldId::Icmpv6Code, 0xff) as u8;
        if t != 136 || c != 0 {
            return;
        }
        let tll = mac_bytes(self.read(FieldId::NdTll, u128::MAX));
        let target = IpAddr::V6(self.read(FieldId::NdTarget, u128::MAX).into());
        let dst = Ipv6Addr::from(self.read(FieldId::Ipv6Dst, u128::MAX));
        let for_us = dst.is_multicast() || dev.has_addr(IpAddr::V6(dst));
        if for_us && dev.on_link(target) && self.side_effects {
            self.neigh_learn(target, tll);
        }
    }
}

/// The encapsulated packet as the underlay bridge sees it, arriving on
/// `in_port` (OVS's `propagate_tunnel_data_to_flow()`).
fn outer_flow(p: &HeaderParams, in_port: u16) -> OfFlow {
    let mut f = OfFlow::ZERO;
    f.set_in_port(u32::from(in_port));
    f.b[ofs::DL_DST..ofs::DL_DST + 6].copy_from_slice(&p.eth_dst);
    f.b[ofs::DL_SRC..ofs::DL_SRC + 6].copy_from_slice(&p.eth_src);
    match (p.ip_src, p.ip_dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.set(FieldId::EthType, u128::from(key::ETH_TYPE_IP));
            f.b[ofs::NW_SRC..ofs::NW_SRC + 4].copy_from_slice(&s.octets());
            f.b[ofs::NW_DST..ofs::NW_DST + 4].copy_from_slice(&d.octets());
        }
        (s, d) => {
            f.set(FieldId::EthType, u128::from(key::ETH_TYPE_IPV6));
            if let (IpAddr::V6(s), IpAddr::V6(d)) = (s, d) {
                f.b[ofs::IPV6_SRC..ofs::IPV6_SRC + 16].copy_from_slice(&s.octets());
                f.b[ofs::IPV6_DST..ofs::IPV6_DST + 16].copy_from_slice(&d.octets());
            }
        }
    }
    f.b[ofs::NW_PROTO] = key::IPPROTO_UDP;
    f.b[ofs::NW_TOS] = p.tos;
    f.b[ofs::NW_TTL] = p.ttl;
    f.b[ofs::TP_DST..ofs::TP_DST + 2].copy_from_slice(&p.dst_port.to_be_bytes());
    f
}
