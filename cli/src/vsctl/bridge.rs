//! ovs-vsctl's own commands: bridges (with OVS's VLAN "fake" bridges),
//! ports, bonds, interfaces, controllers, fail modes, managers, SSL. They
//! read a name cache built from the working copy, as ovs-vsctl's
//! `vsctl_context_populate_cache` does.

use std::collections::{BTreeMap, BTreeSet};

use crate::db::{Atom, Datum, Uuid};

use super::commands::{fail, get_table, set_column, Ctx, Out, Stop, R};
use super::parse::escape_args;
use super::Command;

struct VBridge {
    /// The Bridge row; `None` for a fake bridge, which is a port of its parent.
    cfg: Option<Uuid>,
    parent: Option<String>,
    vlan: i64,
    ports: Vec<String>,
    children: BTreeMap<i64, String>,
}

struct VPort {
    cfg: Uuid,
    bridge: String,
    ifaces: Vec<String>,
}

struct VIface {
    cfg: Uuid,
    port: String,
}

#[derive(Default)]
struct Cache {
    bridges: BTreeMap<String, VBridge>,
    ports: BTreeMap<String, VPort>,
    ifaces: BTreeMap<String, VIface>,
}

fn text(s: impl Into<String>) -> R<Out> {
    Ok(Out::Text(s.into()))
}

fn sorted_lines(mut v: Vec<String>) -> String {
    v.sort();
    v.into_iter().map(|s| s + "\n").collect()
}

fn port_tag(ctx: &Ctx, port: Uuid) -> Option<i64> {
    ctx.data
        .row("Port", port)?
        .int("tag")
        .filter(|t| (0..=4095).contains(t))
}

fn is_fake_bridge(ctx: &Ctx, port: Uuid) -> bool {
    ctx.data
        .row("Port", port)
        .is_some_and(|r| r.bool("fake_bridge"))
        && port_tag(ctx, port).is_some()
}

fn name_of(ctx: &Ctx, table: &str, uuid: Uuid) -> String {
    ctx.data
        .row(table, uuid)
        .map(|r| r.str("name").to_string())
        .unwrap_or_default()
}

impl Cache {
    fn build(ctx: &Ctx) -> Cache {
        let mut c = Cache::default();
        let bridges: Vec<Uuid> = ctx
            .data
            .row("Open_vSwitch", ctx.ovs)
            .map(|r| r.uuids("bridges"))
            .unwrap_or_default()
            .into_iter()
            .filter(|u| ctx.data.row("Bridge", *u).is_some())
            .collect();
        let ports_of = |b: Uuid| -> Vec<Uuid> {
            ctx.data
                .row("Bridge", b)
                .map(|r| r.uuids("ports"))
                .unwrap_or_default()
                .into_iter()
                .filter(|u| ctx.data.row("Port", *u).is_some())
                .collect()
        };

        // First pass: real bridges and the fake bridges among their ports.
        let mut seen_ports = BTreeSet::new();
        for &b in &bridges {
            let name = name_of(ctx, "Bridge", b);
            if c.bridges.contains_key(&name) {
                continue;
            }
            c.add_bridge(Some(b), &name, None, 0);
            for p in ports_of(b) {
                let pname = name_of(ctx, "Port", p);
                if !seen_ports.insert(pname.clone()) {
                    continue;
                }
                if is_fake_bridge(ctx, p) && !c.bridges.contains_key(&pname) {
                    c.add_bridge(None, &pname, Some(&name), port_tag(ctx, p).unwrap_or(0));
                }
            }
        }

        // Second pass: ports and interfaces.
        let mut seen_bridges = BTreeSet::new();
        for &b in &bridges {
            let bname = name_of(ctx, "Bridge", b);
            if !seen_bridges.insert(bname.clone()) {
                continue;
            }
            for p in ports_of(b) {
                let pname = name_of(ctx, "Port", p);
                if c.ports.contains_key(&pname) {
                    continue;
                }
                if is_fake_bridge(ctx, p) && !seen_bridges.insert(pname.clone()) {
                    continue;
                }
                let mut owner = bname.clone();
                if let Some(tag) = port_tag(ctx, p) {
                    if let Some(child) = c.bridges[&bname].children.get(&tag) {
                        owner = child.clone();
                    }
                }
                c.add_port(p, &pname, &owner);
                for i in ctx
                    .data
                    .row("Port", p)
                    .map(|r| r.uuids("interfaces"))
                    .unwrap_or_default()
                {
                    if ctx.data.row("Interface", i).is_none() {
                        continue;
                    }
                    let iname = name_of(ctx, "Interface", i);
                    if !c.ifaces.contains_key(&iname) {
                        c.add_iface(i, &iname, &pname);
                    }
                }
            }
        }
        c
    }

    fn add_bridge(&mut self, cfg: Option<Uuid>, name: &str, parent: Option<&str>, vlan: i64) {
        if let Some(p) = parent.and_then(|p| self.bridges.get_mut(p)) {
            p.children.entry(vlan).or_insert_with(|| name.to_string());
        }
        self.bridges.insert(
            name.to_string(),
            VBridge {
                cfg,
                parent: parent.map(String::from),
                vlan,
                ports: Vec::new(),
                children: BTreeMap::new(),
            },
        );
    }

    fn add_port(&mut self, cfg: Uuid, name: &str, bridge: &str) {
        if let Some(b) = self.bridges.get_mut(bridge) {
            b.ports.push(name.to_string());
        }
        self.ports.insert(
            name.to_string(),
            VPort {
                cfg,
                bridge: bridge.to_string(),
                ifaces: Vec::new(),
            },
        );
    }

    fn add_iface(&mut self, cfg: Uuid, name: &str, port: &str) {
        if let Some(p) = self.ports.get_mut(port) {
            p.ifaces.push(name.to_string());
        }
        self.ifaces.insert(
            name.to_string(),
            VIface {
                cfg,
                port: port.to_string(),
            },
        );
    }

    fn find_bridge(&self, name: &str, must_exist: bool) -> R<Option<&VBridge>> {
        match self.bridges.get(name) {
            None if must_exist => Err(fail(format!("no bridge named {name}"))),
            b => Ok(b),
        }
    }

    fn bridge(&self, name: &str) -> R<&VBridge> {
        Ok(self.find_bridge(name, true)?.expect("must exist"))
    }

    fn real_bridge(&self, name: &str) -> R<Uuid> {
        match self.bridge(name)?.cfg {
            Some(u) => Ok(u),
            None => Err(fail(format!("{name} is a fake bridge"))),
        }
    }

    /// A bridge's Bridge row, or its parent's for a fake bridge.
    fn bridge_cfg(&self, name: &str) -> Uuid {
        let b = &self.bridges[name];
        b.cfg
            .or_else(|| b.parent.as_ref().and_then(|p| self.bridges[p].cfg))
            .unwrap_or(Uuid::ZERO)
    }

    /// A port, but not a bridge's own port of the same name.
    fn find_port(&self, name: &str, must_exist: bool) -> R<Option<&VPort>> {
        match self.ports.get(name).filter(|p| p.bridge != name) {
            None if must_exist => Err(fail(format!("no port named {name}"))),
            p => Ok(p),
        }
    }

    fn find_iface(&self, name: &str, must_exist: bool) -> R<Option<&VIface>> {
        let iface = self
            .ifaces
            .get(name)
            .filter(|i| self.ports[&i.port].bridge != name);
        match iface {
            None if must_exist => Err(fail(format!("no interface named {name}"))),
            i => Ok(i),
        }
    }

    fn check_conflicts(&self, name: &str, msg: &str) -> R<()> {
        if self.bridges.contains_key(name) {
            return Err(fail(format!(
                "{msg} because a bridge named {name} already exists"
            )));
        }
        if let Some(p) = self.ports.get(name) {
            return Err(fail(format!(
                "{msg} because a port named {name} already exists on bridge {}",
                p.bridge
            )));
        }
        if let Some(i) = self.ifaces.get(name) {
            return Err(fail(format!(
                "{msg} because an interface named {name} already exists on bridge {}",
                self.ports[&i.port].bridge
            )));
        }
        Ok(())
    }
}

fn uuid_set_add(ctx: &mut Ctx, table: &str, row: Uuid, column: &str, uuid: Uuid) {
    let mut d = ctx
        .data
        .row(table, row)
        .and_then(|r| r.get(column))
        .cloned()
        .unwrap_or_else(Datum::empty_set);
    if let Datum::Set(s) = &mut d {
        s.insert(Atom::Uuid(uuid));
    }
    ctx.write(table, row, column, d);
}

fn uuid_set_remove(ctx: &mut Ctx, table: &str, row: Uuid, column: &str, uuid: Uuid) {
    let mut d = ctx
        .data
        .row(table, row)
        .and_then(|r| r.get(column))
        .cloned()
        .unwrap_or_else(Datum::empty_set);
    if let Datum::Set(s) = &mut d {
        s.remove(&Atom::Uuid(uuid));
    }
    ctx.write(table, row, column, d);
}

/// ovs-vsctl's `vsctl_context_to_string`: options then arguments.
fn command_string(c: &Command) -> String {
    let mut words: Vec<String> = c.options.keys().cloned().collect();
    words.push(c.name.clone());
    words.extend(c.args.iter().cloned());
    escape_args(&words)
}

/// Parses like C's `atoi`: leading blanks, a sign, digits; 0 otherwise.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let v = t
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |acc, d| {
            acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -v
    } else {
        v
    }
}

pub(crate) fn cmd_add_br(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let may_exist = c.has("--may-exist");
    let name = &c.args[0];
    if name.is_empty() {
        return Err(fail("bridge name must not be empty string"));
    }
    let (parent, vlan) = match c.args.len() {
        1 => (None, 0),
        3 => {
            let vlan = atoi(&c.args[2]);
            if !(0..=4095).contains(&vlan) {
                return Err(fail(format!("{}: vlan must be between 0 and 4095", c.name)));
            }
            (Some(c.args[1].as_str()), vlan)
        }
        _ => {
            return Err(fail(format!(
                "'{}' command takes exactly 1 or 3 arguments",
                c.name
            )))
        }
    };
    let cache = Cache::build(ctx);
    if may_exist {
        if let Some(br) = cache.find_bridge(name, false)? {
            match (parent, &br.parent) {
                (None, Some(_)) => {
                    return Err(fail(format!(
                        "\"--may-exist add-br {name}\" but {name} is a VLAN bridge for VLAN {}",
                        br.vlan
                    )))
                }
                (Some(p), None) => {
                    return Err(fail(format!(
                        "\"--may-exist add-br {name} {p} {vlan}\" but {name} is not a VLAN bridge"
                    )))
                }
                (Some(p), Some(bp)) if p != bp => {
                    return Err(fail(format!(
                        "\"--may-exist add-br {name} {p} {vlan}\" but {name} has the wrong parent {bp}"
                    )))
                }
                (Some(p), Some(_)) if br.vlan != vlan => {
                    return Err(fail(format!(
                        "\"--may-exist add-br {name} {p} {vlan}\" but {name} is a VLAN bridge for the wrong VLAN {}",
                        br.vlan
                    )))
                }
                _ => return text(""),
            }
        }
    }
    cache.check_conflicts(name, &format!("cannot create a bridge named {name}"))?;

    let iface = Uuid::new_v4();
    ctx.insert("Interface", iface);
    ctx.write("Interface", iface, "name", Datum::string(name));
    ctx.write("Interface", iface, "type", Datum::string("internal"));
    let port = Uuid::new_v4();
    ctx.insert("Port", port);
    ctx.write("Port", port, "name", Datum::string(name));
    ctx.write("Port", port, "interfaces", Datum::uuid_set([iface]));
    match parent {
        None => {
            let br = Uuid::new_v4();
            ctx.insert("Bridge", br);
            ctx.write("Bridge", br, "name", Datum::string(name));
            ctx.write("Bridge", br, "ports", Datum::uuid_set([port]));
            let ovs = ctx.ovs;
            uuid_set_add(ctx, "Open_vSwitch", ovs, "bridges", br);
        }
        Some(p) => {
            let parent_br = match cache.find_bridge(p, false)? {
                Some(pb) if pb.parent.is_some() => {
                    return Err(fail("cannot create bridge with fake bridge as parent"))
                }
                Some(pb) => pb,
                None => return Err(fail(format!("parent bridge {p} does not exist"))),
            };
            if let Some(conflict) = parent_br.children.get(&vlan) {
                return Err(fail(format!(
                    "bridge {p} already has a child VLAN bridge {conflict} on VLAN {vlan}"
                )));
            }
            ctx.write("Port", port, "fake_bridge", Datum::boolean(true));
            ctx.write("Port", port, "tag", Datum::integer(vlan));
            let cfg = parent_br.cfg.unwrap_or(Uuid::ZERO);
            uuid_set_add(ctx, "Bridge", cfg, "ports", port);
        }
    }
    text("")
}

/// Deletes a port and its interfaces (the cache is rebuilt by the next command).
fn del_port(ctx: &mut Ctx, cache: &Cache, port: &str) {
    let p = &cache.ports[port];
    let br_cfg = cache.bridge_cfg(&p.bridge);
    uuid_set_remove(ctx, "Bridge", br_cfg, "ports", p.cfg);
    for i in &p.ifaces {
        ctx.delete("Interface", cache.ifaces[i].cfg);
    }
    ctx.delete("Port", p.cfg);
}

fn del_bridge(ctx: &mut Ctx, cache: &Cache, name: &str) {
    let br = &cache.bridges[name];
    for child in br.children.values() {
        del_bridge(ctx, cache, child);
    }
    for p in &br.ports {
        del_port(ctx, cache, p);
    }
    if let Some(cfg) = br.cfg {
        let collectors: Vec<Uuid> = ctx
            .data
            .rows("Flow_Sample_Collector_Set")
            .filter(|(_, r)| r.uuids("bridge") == [cfg])
            .map(|(u, _)| u)
            .collect();
        for u in collectors {
            ctx.delete("Flow_Sample_Collector_Set", u);
        }
        ctx.delete("Bridge", cfg);
        let ovs = ctx.ovs;
        uuid_set_remove(ctx, "Open_vSwitch", ovs, "bridges", cfg);
    }
}

pub(crate) fn cmd_del_br(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    if cache
        .find_bridge(&c.args[0], !c.has("--if-exists"))?
        .is_some()
    {
        del_bridge(ctx, &cache, &c.args[0]);
    }
    text("")
}

pub(crate) fn cmd_list_br(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let (mut real, mut fake) = (c.has("--real"), c.has("--fake"));
    if !real && !fake {
        (real, fake) = (true, true);
    }
    let cache = Cache::build(ctx);
    let names = cache
        .bridges
        .iter()
        .filter(|(_, b)| if b.parent.is_some() { fake } else { real })
        .map(|(n, _)| n.clone())
        .collect();
    text(sorted_lines(names))
}

pub(crate) fn cmd_br_exists(ctx: &mut Ctx, c: &Command) -> R<Out> {
    if Cache::build(ctx).find_bridge(&c.args[0], false)?.is_none() {
        return Err(Stop::Exit(2));
    }
    text("")
}

pub(crate) fn cmd_br_to_vlan(ctx: &mut Ctx, c: &Command) -> R<Out> {
    text(format!("{}\n", Cache::build(ctx).bridge(&c.args[0])?.vlan))
}

pub(crate) fn cmd_br_to_parent(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let br = cache.bridge(&c.args[0])?;
    text(format!("{}\n", br.parent.as_deref().unwrap_or(&c.args[0])))
}

/// A fake bridge keeps its external ids on its port, prefixed `fake-bridge-`.
fn external_ids_target(cache: &Cache, name: &str) -> R<(&'static str, Uuid, &'static str)> {
    let br = cache.bridge(name)?;
    Ok(match br.cfg {
        Some(cfg) => ("Bridge", cfg, ""),
        // A fake bridge's port can be missing only from a database that
        // also has a real bridge of the same name.
        None => match cache.ports.get(name) {
            Some(p) => ("Port", p.cfg, "fake-bridge-"),
            None => {
                return Err(fail(format!(
                    "{name}: database contains duplicate bridge name"
                )))
            }
        },
    })
}

pub(crate) fn cmd_br_set_external_id(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let (table, row, prefix) = external_ids_target(&cache, &c.args[0])?;
    let mut ids = ctx
        .data
        .row(table, row)
        .map(|r| r.string_map("external_ids"))
        .unwrap_or_default();
    let key = format!("{prefix}{}", c.args[1]);
    match c.args.get(2) {
        Some(v) => ids.insert(key, v.clone()),
        None => ids.remove(&key),
    };
    ctx.write(table, row, "external_ids", Datum::string_map(ids));
    text("")
}

pub(crate) fn cmd_br_get_external_id(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let (table, row, prefix) = external_ids_target(&cache, &c.args[0])?;
    let ids = ctx
        .data
        .row(table, row)
        .map(|r| r.string_map("external_ids"))
        .unwrap_or_default();
    let out = match c.args.get(1) {
        Some(key) => ids
            .get(&format!("{prefix}{key}"))
            .map(|v| format!("{v}\n"))
            .unwrap_or_default(),
        None => ids
            .iter()
            .filter_map(|(k, v)| Some(format!("{}={v}\n", k.strip_prefix(prefix)?)))
            .collect(),
    };
    text(out)
}

pub(crate) fn cmd_list_ports(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let br = cache.bridge(&c.args[0])?;
    text(sorted_lines(
        br.ports
            .iter()
            .filter(|p| **p != c.args[0])
            .cloned()
            .collect(),
    ))
}

fn add_port(
    ctx: &mut Ctx,
    c: &Command,
    br_name: &str,
    port_name: &str,
    ifaces: &[String],
    settings: &[String],
    fake_iface: bool,
) -> R<Out> {
    if port_name.is_empty() {
        return Err(fail("port name must not be empty string"));
    }
    if ifaces.iter().any(String::is_empty) {
        return Err(fail("interface name must not be empty string"));
    }
    let cache = Cache::build(ctx);
    if c.has("--may-exist") {
        if let Some(p) = cache.find_port(port_name, false)? {
            let mut want: Vec<&str> = ifaces.iter().map(String::as_str).collect();
            want.sort();
            let mut have: Vec<String> = ctx
                .data
                .row("Port", p.cfg)
                .map(|r| r.uuids("interfaces"))
                .unwrap_or_default()
                .into_iter()
                .map(|i| name_of(ctx, "Interface", i))
                .collect();
            have.sort();
            if p.bridge != br_name {
                return Err(fail(format!(
                    "\"{}\" but {port_name} is actually attached to bridge {}",
                    command_string(c),
                    p.bridge
                )));
            }
            if want != have {
                return Err(fail(format!(
                    "\"{}\" but {port_name} actually has interface(s) {}",
                    command_string(c),
                    have.join(", ")
                )));
            }
            return text("");
        }
    }
    cache.check_conflicts(
        port_name,
        &format!("cannot create a port named {port_name}"),
    )?;
    for i in ifaces {
        cache.check_conflicts(i, &format!("cannot create an interface named {i}"))?;
    }
    let bridge = cache.bridge(br_name)?;

    let iface_uuids: Vec<Uuid> = ifaces
        .iter()
        .map(|i| {
            let u = Uuid::new_v4();
            ctx.insert("Interface", u);
            ctx.write("Interface", u, "name", Datum::string(i));
            u
        })
        .collect();
    let port = Uuid::new_v4();
    ctx.insert("Port", port);
    ctx.write("Port", port, "name", Datum::string(port_name));
    ctx.write("Port", port, "interfaces", Datum::uuid_set(iface_uuids));
    ctx.write("Port", port, "bond_fake_iface", Datum::boolean(fake_iface));
    if bridge.parent.is_some() {
        ctx.write("Port", port, "tag", Datum::integer(bridge.vlan));
    }
    let port_table = get_table("Port")?;
    for s in settings {
        set_column(ctx, port_table, port, s)?;
    }
    let br_cfg = cache.bridge_cfg(br_name);
    uuid_set_add(ctx, "Bridge", br_cfg, "ports", port);
    text("")
}

pub(crate) fn cmd_add_port(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let (br, port) = (c.args[0].clone(), c.args[1].clone());
    add_port(
        ctx,
        c,
        &br,
        &port,
        std::slice::from_ref(&port),
        &c.args[2..],
        false,
    )
}

pub(crate) fn cmd_add_bond(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let n_ifaces = c.args[2..]
        .iter()
        .position(|a| a.contains('='))
        .unwrap_or(c.args.len() - 2);
    if n_ifaces < 2 {
        return Err(fail(format!(
            "add-bond requires at least 2 interfaces, but only {n_ifaces} were specified"
        )));
    }
    let ifaces = c.args[2..2 + n_ifaces].to_vec();
    let settings = c.args[2 + n_ifaces..].to_vec();
    add_port(
        ctx,
        c,
        &c.args[0],
        &c.args[1],
        &ifaces,
        &settings,
        c.has("--fake-iface"),
    )
}

pub(crate) fn cmd_add_bond_iface(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let port = cache.find_port(&c.args[0], true)?.expect("must exist");
    let iface_name = &c.args[1];
    if c.has("--may-exist") {
        if let Some(i) = cache.find_iface(iface_name, false)? {
            if cache.ports[&i.port].cfg == port.cfg {
                return text("");
            }
            return Err(fail(format!(
                "\"{}\" but {iface_name} is actually attached to port {}",
                command_string(c),
                i.port
            )));
        }
    }
    cache.check_conflicts(
        iface_name,
        &format!("cannot create an interface named {iface_name}"),
    )?;
    let u = Uuid::new_v4();
    ctx.insert("Interface", u);
    ctx.write("Interface", u, "name", Datum::string(iface_name));
    uuid_set_add(ctx, "Port", port.cfg, "interfaces", u);
    text("")
}

pub(crate) fn cmd_del_bond_iface(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let iface_name = c.args.last().expect("one argument");
    let Some(iface) = cache.find_iface(iface_name, !c.has("--if-exists"))? else {
        return text("");
    };
    if c.args.len() > 1 {
        let port = cache.find_port(&c.args[0], true)?.expect("must exist");
        if cache.ports[&iface.port].cfg != port.cfg {
            return Err(fail(format!(
                "port {} does not have an interface {iface_name}",
                c.args[0]
            )));
        }
    }
    let port = &cache.ports[&iface.port];
    if port.ifaces.len() <= 1 {
        return Err(fail(format!(
            "cannot delete last interface from port {}",
            iface.port
        )));
    }
    uuid_set_remove(ctx, "Port", port.cfg, "interfaces", iface.cfg);
    ctx.delete("Interface", iface.cfg);
    text("")
}

pub(crate) fn cmd_del_port(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let must_exist = !c.has("--if-exists");
    let target = c.args.last().expect("one argument");
    let cache = Cache::build(ctx);
    let port = if cache.find_bridge(target, false)?.is_some() {
        if must_exist {
            return Err(fail(format!(
                "cannot delete port {target} because it is the local port for bridge {target} \
                 (deleting this port requires deleting the entire bridge)"
            )));
        }
        None
    } else if !c.has("--with-iface") {
        cache.find_port(target, must_exist)?.map(|_| target.clone())
    } else {
        let p = match cache.find_port(target, false)? {
            Some(_) => Some(target.clone()),
            None => cache.find_iface(target, false)?.map(|i| i.port.clone()),
        };
        if must_exist && p.is_none() {
            return Err(fail(format!("no port or interface named {target}")));
        }
        p
    };
    if let Some(port) = port {
        if c.args.len() == 2 {
            let br_name = &c.args[0];
            cache.bridge(br_name)?;
            let owner = &cache.ports[&port].bridge;
            if owner != br_name {
                return Err(fail(
                    if cache.bridges[owner].parent.as_deref() == Some(br_name) {
                        format!("bridge {br_name} does not have a port {target} (although its child bridge {owner} does)")
                    } else {
                        format!("bridge {br_name} does not have a port {target}")
                    },
                ));
            }
        }
        del_port(ctx, &cache, &port);
    }
    text("")
}

pub(crate) fn cmd_port_to_br(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let p = cache.find_port(&c.args[0], true)?.expect("must exist");
    text(format!("{}\n", p.bridge))
}

pub(crate) fn cmd_list_ifaces(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let br = cache.bridge(&c.args[0])?;
    let names = br
        .ports
        .iter()
        .flat_map(|p| cache.ports[p].ifaces.iter())
        .filter(|i| **i != c.args[0])
        .cloned()
        .collect();
    text(sorted_lines(names))
}

pub(crate) fn cmd_iface_to_br(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    let i = cache.find_iface(&c.args[0], true)?.expect("must exist");
    text(format!("{}\n", cache.ports[&i.port].bridge))
}

fn targets(ctx: &Ctx, table: &str, refs: &[Uuid]) -> Vec<String> {
    refs.iter()
        .filter_map(|u| ctx.data.row(table, *u))
        .map(|r| r.str("target").to_string())
        .collect()
}

pub(crate) fn cmd_get_controller(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    cache.bridge(&c.args[0])?;
    let cfg = cache.bridge_cfg(&c.args[0]);
    let refs = ctx
        .data
        .row("Bridge", cfg)
        .map(|r| r.uuids("controller"))
        .unwrap_or_default();
    text(sorted_lines(targets(ctx, "Controller", &refs)))
}

pub(crate) fn cmd_del_controller(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let br = Cache::build(ctx).real_bridge(&c.args[0])?;
    for u in ctx
        .data
        .row("Bridge", br)
        .map(|r| r.uuids("controller"))
        .unwrap_or_default()
    {
        ctx.delete("Controller", u);
    }
    ctx.write("Bridge", br, "controller", Datum::empty_set());
    text("")
}

/// New Controller or Manager rows for `targets`, with `--inactivity-probe`.
fn insert_targets(ctx: &mut Ctx, c: &Command, table: &str, targets: &[String]) -> Vec<Uuid> {
    let probe = c.opt("--inactivity-probe").map(atoi);
    targets
        .iter()
        .map(|t| {
            let u = Uuid::new_v4();
            ctx.insert(table, u);
            ctx.write(table, u, "target", Datum::string(t));
            if let Some(ms) = probe {
                ctx.write(table, u, "inactivity_probe", Datum::integer(ms));
            }
            u
        })
        .collect()
}

pub(crate) fn cmd_set_controller(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let br = Cache::build(ctx).real_bridge(&c.args[0])?;
    for u in ctx
        .data
        .row("Bridge", br)
        .map(|r| r.uuids("controller"))
        .unwrap_or_default()
    {
        ctx.delete("Controller", u);
    }
    let new = insert_targets(ctx, c, "Controller", &c.args[1..]);
    ctx.write("Bridge", br, "controller", Datum::uuid_set(new));
    text("")
}

pub(crate) fn cmd_get_fail_mode(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let cache = Cache::build(ctx);
    cache.bridge(&c.args[0])?;
    let mode = ctx
        .data
        .row("Bridge", cache.bridge_cfg(&c.args[0]))
        .and_then(|r| r.opt_str("fail_mode"))
        .filter(|m| !m.is_empty())
        .map(|m| format!("{m}\n"))
        .unwrap_or_default();
    text(mode)
}

pub(crate) fn cmd_del_fail_mode(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let br = Cache::build(ctx).real_bridge(&c.args[0])?;
    ctx.write("Bridge", br, "fail_mode", Datum::empty_set());
    text("")
}

pub(crate) fn cmd_set_fail_mode(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let br = Cache::build(ctx).real_bridge(&c.args[0])?;
    let mode = &c.args[1];
    if mode != "standalone" && mode != "secure" {
        return Err(fail("fail-mode must be \"standalone\" or \"secure\""));
    }
    ctx.write("Bridge", br, "fail_mode", Datum::string(mode));
    text("")
}

fn root_refs(ctx: &Ctx, column: &str) -> Vec<Uuid> {
    ctx.data
        .row("Open_vSwitch", ctx.ovs)
        .map(|r| r.uuids(column))
        .unwrap_or_default()
}

pub(crate) fn cmd_get_manager(ctx: &mut Ctx, _: &Command) -> R<Out> {
    let mut t = targets(ctx, "Manager", &root_refs(ctx, "manager_options"));
    t.dedup();
    let t: BTreeSet<String> = t.into_iter().collect();
    text(t.into_iter().map(|s| s + "\n").collect::<String>())
}

fn delete_managers(ctx: &mut Ctx) {
    for u in root_refs(ctx, "manager_options") {
        ctx.delete("Manager", u);
    }
    let ovs = ctx.ovs;
    ctx.write("Open_vSwitch", ovs, "manager_options", Datum::empty_set());
}

pub(crate) fn cmd_del_manager(ctx: &mut Ctx, _: &Command) -> R<Out> {
    delete_managers(ctx);
    text("")
}

pub(crate) fn cmd_set_manager(ctx: &mut Ctx, c: &Command) -> R<Out> {
    delete_managers(ctx);
    let new = insert_targets(ctx, c, "Manager", &c.args);
    let ovs = ctx.ovs;
    ctx.write("Open_vSwitch", ovs, "manager_options", Datum::uuid_set(new));
    text("")
}

pub(crate) fn cmd_get_ssl(ctx: &mut Ctx, _: &Command) -> R<Out> {
    let Some(ssl) = root_refs(ctx, "ssl")
        .first()
        .and_then(|u| ctx.data.row("SSL", *u))
    else {
        return text("");
    };
    text(format!(
        "Private key: {}\nCertificate: {}\nCA Certificate: {}\nBootstrap: {}\n",
        ssl.str("private_key"),
        ssl.str("certificate"),
        ssl.str("ca_cert"),
        ssl.bool("bootstrap_ca_cert")
    ))
}

pub(crate) fn cmd_del_ssl(ctx: &mut Ctx, _: &Command) -> R<Out> {
    if let Some(u) = root_refs(ctx, "ssl").first().copied() {
        ctx.delete("SSL", u);
        let ovs = ctx.ovs;
        ctx.write("Open_vSwitch", ovs, "ssl", Datum::empty_set());
    }
    text("")
}

pub(crate) fn cmd_set_ssl(ctx: &mut Ctx, c: &Command) -> R<Out> {
    if let Some(u) = root_refs(ctx, "ssl").first().copied() {
        ctx.delete("SSL", u);
    }
    let u = Uuid::new_v4();
    ctx.insert("SSL", u);
    ctx.write("SSL", u, "private_key", Datum::string(&c.args[0]));
    ctx.write("SSL", u, "certificate", Datum::string(&c.args[1]));
    ctx.write("SSL", u, "ca_cert", Datum::string(&c.args[2]));
    ctx.write(
        "SSL",
        u,
        "bootstrap_ca_cert",
        Datum::boolean(c.has("--bootstrap")),
    );
    let ovs = ctx.ovs;
    ctx.write("Open_vSwitch", ovs, "ssl", Datum::uuid_set([u]));
    text("")
}

pub(crate) fn cmd_emer_reset(ctx: &mut Ctx, _: &Command) -> R<Out> {
    let ovs = ctx.ovs;
    ctx.write("Open_vSwitch", ovs, "manager_options", Datum::empty_set());
    ctx.write("Open_vSwitch", ovs, "ssl", Datum::empty_set());
    let bridges: Vec<Uuid> = ctx.data.rows("Bridge").map(|(u, _)| u).collect();
    for b in bridges {
        for col in [
            "controller",
            "fail_mode",
            "mirrors",
            "netflow",
            "sflow",
            "ipfix",
            "flood_vlans",
        ] {
            ctx.write("Bridge", b, col, Datum::empty_set());
        }
        // Only the "hwaddr" key of other_config survives.
        let oc = ctx
            .data
            .row("Bridge", b)
            .map(|r| r.string_map("other_config"))
            .unwrap_or_default();
        let kept: Vec<(String, String)> = oc.into_iter().filter(|(k, _)| k == "hwaddr").collect();
        ctx.write("Bridge", b, "other_config", Datum::string_map(kept));
    }
    let ports: Vec<Uuid> = ctx.data.rows("Port").map(|(u, _)| u).collect();
    for p in ports {
        ctx.write("Port", p, "other_config", Datum::empty_map());
    }
    let ifaces: Vec<Uuid> = ctx.data.rows("Interface").map(|(u, _)| u).collect();
    for i in ifaces {
        ctx.write("Interface", i, "ingress_policing_rate", Datum::integer(0));
        ctx.write("Interface", i, "ingress_policing_burst", Datum::integer(0));
    }
    for t in [
        "Mirror",
        "Controller",
        "Manager",
        "NetFlow",
        "SSL",
        "sFlow",
        "IPFIX",
        "Flow_Sample_Collector_Set",
    ] {
        let rows: Vec<Uuid> = ctx.data.rows(t).map(|(u, _)| u).collect();
        for u in rows {
            ctx.delete(t, u);
        }
    }
    text("")
}

/// C's `strtoull` as ovs-vsctl uses it for I-SIDs and VLANs: a leading
/// number (sign and trailing text allowed), else "Invalid argument".
fn strtoull(s: &str) -> R<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
    if n.is_empty() {
        return Err(fail(format!("Invalid argument {s}")));
    }
    let v = n.parse::<u64>().unwrap_or(u64::MAX);
    Ok(if neg { v.wrapping_neg() } else { v } as i64)
}

/// The AutoAttach row of the (real) bridge behind `name`, if any.
fn aa_bridge(ctx: &Ctx, name: &str) -> R<(Uuid, Option<Uuid>)> {
    let cache = Cache::build(ctx);
    cache.bridge(name)?;
    let br = cache.bridge_cfg(name);
    let aa = ctx
        .data
        .row("Bridge", br)
        .and_then(|r| r.uuids("auto_attach").first().copied());
    Ok((br, aa))
}

fn mappings(ctx: &Ctx, aa: Option<Uuid>) -> std::collections::BTreeMap<Atom, Atom> {
    match aa
        .and_then(|u| ctx.data.row("AutoAttach", u))
        .and_then(|r| r.get("mappings"))
    {
        Some(Datum::Map(m)) => m.clone(),
        _ => std::collections::BTreeMap::new(),
    }
}

pub(crate) fn cmd_add_aa_mapping(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let (isid, vlan) = (strtoull(&c.args[1])?, strtoull(&c.args[2])?);
    let (br, aa) = aa_bridge(ctx, &c.args[0])?;
    let aa = match aa {
        Some(u) => u,
        None => {
            let u = Uuid::new_v4();
            ctx.insert("AutoAttach", u);
            ctx.write("Bridge", br, "auto_attach", Datum::uuid_set([u]));
            u
        }
    };
    let mut m = mappings(ctx, Some(aa));
    // An I-SID already mapped keeps its VLAN, as in ovs-vsctl.
    m.entry(Atom::Integer(isid)).or_insert(Atom::Integer(vlan));
    ctx.write("AutoAttach", aa, "mappings", Datum::Map(m));
    text("")
}

pub(crate) fn cmd_del_aa_mapping(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let (isid, vlan) = (strtoull(&c.args[1])?, strtoull(&c.args[2])?);
    let (_, aa) = aa_bridge(ctx, &c.args[0])?;
    let mut m = mappings(ctx, aa);
    let (k, v) = (Atom::Integer(isid), Atom::Integer(vlan));
    if let (Some(aa), Some(true)) = (aa, m.get(&k).map(|x| *x == v)) {
        // ovs-vsctl drops every pair sharing the I-SID or the VLAN.
        m.retain(|mk, mv| *mk != k && *mv != v);
        ctx.write("AutoAttach", aa, "mappings", Datum::Map(m));
    }
    text("")
}

pub(crate) fn cmd_get_aa_mapping(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let (_, aa) = aa_bridge(ctx, &c.args[0])?;
    text(
        mappings(ctx, aa)
            .iter()
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect::<String>(),
    )
}
