//! fvs-cni: a CNI plugin (spec 1.0.0, with GC and STATUS of 1.1.0) that
//! attaches a pod to an fvs bridge through a vhost-user port, for a DPDK
//! application in the pod (virtio-user), as Intel's userspace CNI plugin
//! does for OVS-DPDK.
//!
//! ADD creates the port (`dpdkvhostuserclient` for `"mode": "client"`, the
//! default: fvs connects to a socket the pod's app listens on; or
//! `dpdkvhostuser` for `"mode": "server"`: fvs listens and the socket is
//! hard-linked into the pod's directory), named from the container id,
//! with the pod's identity in `external_ids`, and writes
//! `<socketDir>/<containerID>/<ifname>.json` describing the interface to
//! the app. IPAM is delegated to the plugin `ipam.type` names.
//!
//! The plugin is a pure function of (environment, stdin) to (stdout, exit
//! status) apart from the switch, the IPAM plugin and the files it writes;
//! [`run`] is that function and the binary only wires it to the process.

pub mod db;
pub mod ipam;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use db::{quote, DbClientError, Iface};

/// The CNI versions whose configs and results this plugin speaks.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];

/// Where per-pod directories go unless the config says `socketDir`.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/fvs/cni";

/// Keys of the Interface's `external_ids` the plugin writes.
pub mod keys {
    pub const CONTAINER_ID: &str = "container_id";
    pub const IFNAME: &str = "cni_ifname";
    pub const NETWORK: &str = "cni_network";
    pub const POD_NAME: &str = "pod_name";
    pub const POD_NAMESPACE: &str = "pod_namespace";
    pub const MAC: &str = "attached-mac";
    /// The pod's directory, for GC (which has no per-pod config).
    pub const DIR: &str = "cni_dir";
}

/// Error codes of the CNI spec, and this plugin's own (100 and up).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// ADD for a (container, ifname) that is attached already.
    pub const ALREADY_ATTACHED: u32 = 100;
    /// The switch refused or failed to open the port.
    pub const PORT_FAILED: u32 = 101;
    /// CHECK found the attachment not as ADD left it.
    pub const CHECK_FAILED: u32 = 102;
}

/// A CNI error: printed as the spec's error JSON on stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    fn json(&self, version: &str) -> Value {
        let mut v = json!({"cniVersion": version, "code": self.code, "msg": self.msg});
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }
}

impl From<DbClientError> for CniError {
    fn from(e: DbClientError) -> CniError {
        let c = match e {
            // The switch restarting is transient: the runtime retries.
            DbClientError::Unreachable { .. } | DbClientError::Timeout => code::TRY_AGAIN,
            DbClientError::Command(_) => code::PORT_FAILED,
        };
        CniError::new(c, e.to_string())
    }
}

/// What the plugin prints and its exit status.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    pub status: u8,
}

/// The runtime's `CNI_*` variables.
#[derive(Clone, Debug, Default)]
struct Env {
    container_id: String,
    netns: String,
    ifname: String,
    args: BTreeMap<String, String>,
    /// `CNI_ARGS` as given, for the IPAM plugin.
    args_raw: String,
    path: Vec<PathBuf>,
}

/// Which side of the vhost-user socket fvs takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// fvs connects (`dpdkvhostuserclient`); the app listens.
    Client,
    /// fvs listens (`dpdkvhostuser`); the app connects.
    Server,
}

impl Mode {
    fn port_type(self) -> &'static str {
        match self {
            Mode::Client => "dpdkvhostuserclient",
            Mode::Server => "dpdkvhostuser",
        }
    }

    /// The app's role, as virtio-user's `server=` wants it.
    fn app_role(self) -> &'static str {
        match self {
            Mode::Client => "server",
            Mode::Server => "client",
        }
    }
}

/// The network configuration this plugin reads.
#[derive(Clone, Debug)]
struct Config {
    version: String,
    name: String,
    bridge: String,
    mode: Mode,
    vlan: Option<u16>,
    mtu: Option<u32>,
    socket_dir: PathBuf,
    control: PathBuf,
    ipam: Option<String>,
    mac: Option<String>,
    /// `runtimeConfig.deviceID`: the slot a device plugin gave the pod;
    /// names its directory instead of the container id.
    device_id: Option<String>,
    prev_result: Option<Value>,
    valid_attachments: Option<Vec<(String, String)>>,
    /// The config as received, for the IPAM plugin.
    raw: Value,
}

/// Fields of other plugins (the bridge plugin's) that mean nothing here;
/// a config carrying them was written for something else.
const UNSUPPORTED_FIELDS: [&str; 5] = [
    "isGateway",
    "isDefaultGateway",
    "ipMasq",
    "hairpinMode",
    "promiscMode",
];

/// Runs one plugin invocation: `var` reads the environment, `stdin` is
/// the network config.
pub fn run(var: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    // The error's cniVersion is the config's when it has a readable one.
    let version = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| SUPPORTED_VERSIONS[0].to_string());
    match dispatch(var, stdin) {
        Ok(Some(v)) => Outcome {
            stdout: format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()),
            status: 0,
        },
        Ok(None) => Outcome {
            stdout: String::new(),
            status: 0,
        },
        Err(e) => Outcome {
            stdout: format!(
                "{}\n",
                serde_json::to_string_pretty(&e.json(&version)).unwrap_or_default()
            ),
            status: 1,
        },
    }
}

fn dispatch(var: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let command = var("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        let v = serde_json::from_slice::<Value>(stdin).ok();
        let asked = v
            .as_ref()
            .and_then(|v| v.get("cniVersion"))
            .and_then(Value::as_str)
            .unwrap_or(SUPPORTED_VERSIONS[1]);
        return Ok(Some(json!({
            "cniVersion": asked,
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    }
    if !["ADD", "DEL", "CHECK", "GC", "STATUS"].contains(&command.as_str()) {
        return Err(CniError::new(
            code::INVALID_ENV,
            if command.is_empty() {
                "CNI_COMMAND is not set".to_string()
            } else {
                format!(
                    "CNI_COMMAND \"{command}\" is not one of ADD, DEL, CHECK, GC, STATUS, VERSION"
                )
            },
        ));
    }
    let cfg = parse_config(stdin, &command)?;
    match command.as_str() {
        "STATUS" => status(&cfg).map(|_| None),
        "GC" => {
            let env = read_env(var, &command)?;
            gc(&cfg, &env).map(|_| None)
        }
        _ => {
            let env = read_env(var, &command)?;
            match command.as_str() {
                "ADD" => add(&cfg, &env).map(Some),
                "DEL" => del(&cfg, &env).map(|_| None),
                _ => check(&cfg, &env).map(|_| None),
            }
        }
    }
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

fn parse_config(stdin: &[u8], command: &str) -> Result<Config, CniError> {
    let raw: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            code::DECODE,
            format!("cannot decode the network configuration: {e}"),
        )
    })?;
    let obj = raw.as_object().ok_or_else(|| {
        CniError::new(
            code::DECODE,
            "the network configuration is not a JSON object",
        )
    })?;
    let string = |k: &str| -> Result<Option<String>, CniError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("\"{k}\" must be a string"))),
        }
    };
    let version = string("cniVersion")?.ok_or_else(|| invalid("\"cniVersion\" is missing"))?;
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion \"{version}\" is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    if (command == "GC" || command == "STATUS") && version == "1.0.0" {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("{command} needs cniVersion 1.1.0, the config says {version}"),
        ));
    }
    let name = string("name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("\"name\" is missing"))?;
    if let Some(f) = UNSUPPORTED_FIELDS.iter().find(|f| obj.contains_key(**f)) {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!("field \"{f}\" is not supported by fvs-cni (a vhost-user port has no kernel interface)"),
        ));
    }
    let bridge = string("bridge")?
        .filter(|b| !b.is_empty())
        .ok_or_else(|| invalid("\"bridge\" is missing"))?;
    let mode = match string("mode")?.as_deref() {
        None | Some("client") => Mode::Client,
        Some("server") => Mode::Server,
        Some(m) => {
            return Err(invalid(format!(
                "\"mode\" is \"{m}\", not \"client\" or \"server\""
            )))
        }
    };
    let uint = |k: &str, lo: u64, hi: u64| -> Result<Option<u64>, CniError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| (lo..=hi).contains(n))
                .map(Some)
                .ok_or_else(|| {
                    invalid(format!("\"{k}\" is {v}, not an integer from {lo} to {hi}"))
                }),
        }
    };
    let vlan = uint("vlan", 1, 4094)?.map(|v| v as u16);
    let mtu = uint("mtu", 68, 9702)?.map(|v| v as u32);
    let socket_dir =
        PathBuf::from(string("socketDir")?.unwrap_or_else(|| DEFAULT_SOCKET_DIR.into()));
    if !socket_dir.is_absolute() {
        return Err(invalid(format!(
            "\"socketDir\" {} is not an absolute path",
            socket_dir.display()
        )));
    }
    let control = string("fvsSocket")?
        .map(PathBuf::from)
        .unwrap_or_else(crate::unixctl::default_socket);
    let ipam = match obj.get("ipam") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(Value::Object(m)) => Some(
            m.get("type")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| invalid("\"ipam\" has no \"type\""))?
                .to_string(),
        ),
        Some(_) => return Err(invalid("\"ipam\" must be an object")),
    };
    let mac = obj
        .get("runtimeConfig")
        .and_then(|r| r.get("mac"))
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(m) = &mac {
        parse_mac(m)
            .ok_or_else(|| invalid(format!("runtimeConfig.mac \"{m}\" is not a MAC address")))?;
    }
    let device_id = obj
        .get("runtimeConfig")
        .and_then(|r| r.get("deviceID"))
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(d) = &device_id {
        let ok = !d.is_empty()
            && d != "."
            && d != ".."
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(invalid(format!(
                "runtimeConfig.deviceID \"{d}\" is not a plain directory name"
            )));
        }
    }
    let prev_result = obj.get("prevResult").filter(|v| !v.is_null()).cloned();
    let valid_attachments = match obj.get("cni.dev/valid-attachments") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| {
                    let s = |k| v.get(k).and_then(Value::as_str).map(String::from);
                    Some((s("containerID")?, s("ifname")?))
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    invalid("\"cni.dev/valid-attachments\" entries need containerID and ifname")
                })?,
        ),
        Some(_) => return Err(invalid("\"cni.dev/valid-attachments\" must be a list")),
    };
    Ok(Config {
        version,
        name,
        bridge,
        mode,
        vlan,
        mtu,
        socket_dir,
        control,
        ipam,
        mac,
        device_id,
        prev_result,
        valid_attachments,
        raw,
    })
}

fn read_env(var: &dyn Fn(&str) -> Option<String>, command: &str) -> Result<Env, CniError> {
    let need = |k: &str| {
        var(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CniError::new(code::INVALID_ENV, format!("{k} is not set")))
    };
    let path: Vec<PathBuf> = var("CNI_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    let args_raw = var("CNI_ARGS").unwrap_or_default();
    let args = args_raw
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if command == "GC" {
        return Ok(Env {
            path,
            ..Env::default()
        });
    }
    let container_id = need("CNI_CONTAINERID")?;
    // The spec: alphanumerics, then also '_', '.', '-'.
    let ok_id = container_id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && container_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok_id {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_CONTAINERID \"{container_id}\" has characters other than letters, digits, '_', '.', '-'"),
        ));
    }
    let ifname = need("CNI_IFNAME")?;
    if ifname.len() > 15
        || ifname == "."
        || ifname == ".."
        || ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_IFNAME \"{ifname}\" is not a valid interface name"),
        ));
    }
    // DEL may come after the namespace is gone (the spec allows it empty).
    let netns = if command == "DEL" {
        var("CNI_NETNS").unwrap_or_default()
    } else {
        need("CNI_NETNS")?
    };
    Ok(Env {
        container_id,
        netns,
        ifname,
        args,
        args_raw,
        path,
    })
}

/// The port of (container, ifname): 12 characters of the id, as runtimes
/// show container ids, and the interface name, so pods with several
/// interfaces get several ports.
pub fn port_name(container_id: &str, ifname: &str) -> String {
    let short: String = container_id.chars().take(12).collect();
    format!("{short}-{ifname}")
}

/// A locally administered unicast MAC derived from (container, ifname), so
/// that a repeated ADD after DEL gives the pod the same address.
pub fn derived_mac(container_id: &str, ifname: &str) -> String {
    // FNV-1a: small, stable across releases (unlike std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes().chain([b'/']).chain(ifname.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Paths of one attachment's files.
struct Files {
    dir: PathBuf,
    socket: PathBuf,
    json: PathBuf,
}

fn files(cfg: &Config, container_id: &str, ifname: &str) -> Files {
    let slot = cfg.device_id.as_deref().unwrap_or(container_id);
    files_in(cfg.socket_dir.join(slot), ifname)
}

fn files_in(dir: PathBuf, ifname: &str) -> Files {
    Files {
        socket: dir.join(format!("{ifname}.sock")),
        json: dir.join(format!("{ifname}.json")),
        dir,
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> CniError {
    CniError::new(code::IO, format!("{what} {}: {e}", path.display()))
}

fn cni_env(env: &Env) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_CONTAINERID", env.container_id.clone()),
        ("CNI_NETNS", env.netns.clone()),
        ("CNI_IFNAME", env.ifname.clone()),
        ("CNI_ARGS", env.args_raw.clone()),
        (
            "CNI_PATH",
            env.path
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        ),
    ]
}

/// Runs the IPAM plugin, if the config has one.
fn ipam(cfg: &Config, env: &Env, command: &str) -> Result<Value, CniError> {
    let Some(kind) = &cfg.ipam else {
        return Ok(Value::Null);
    };
    let plugin = ipam::find(kind, &env.path)?;
    let mut conf = cfg.raw.clone();
    // 1.1.0 results are 1.0.0's: IPAM plugins that predate 1.1 serve both.
    if cfg.version == "1.1.0" {
        conf["cniVersion"] = json!("1.0.0");
    }
    let bytes = serde_json::to_vec(&conf).unwrap_or_default();
    ipam::exec(&plugin, command, &bytes, &cni_env(env))
}

/// The attachment's Interface, if there is one with its port name.
fn lookup(cfg: &Config, name: &str) -> Result<Option<Iface>, CniError> {
    Ok(
        db::find_ifaces(&cfg.control, &[format!("name={}", quote(name))])?
            .into_iter()
            .next(),
    )
}

fn owned_by(i: &Iface, env: &Env) -> bool {
    i.external_ids.get(keys::CONTAINER_ID) == Some(&env.container_id)
        && i.external_ids.get(keys::IFNAME) == Some(&env.ifname)
}

fn add(cfg: &Config, env: &Env) -> Result<Value, CniError> {
    if !Path::new(&env.netns).exists() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("network namespace {} does not exist", env.netns),
        ));
    }
    let port = port_name(&env.container_id, &env.ifname);
    if let Some(i) = lookup(cfg, &port)? {
        let msg = if owned_by(&i, env) {
            format!(
                "container {} is attached to {} as {} already (ADD twice without DEL)",
                env.container_id, cfg.bridge, env.ifname
            )
        } else {
            format!("port {port} exists and belongs to something else")
        };
        return Err(CniError::new(code::ALREADY_ATTACHED, msg));
    }
    if db::vsctl(&cfg.control, &["br-exists".into(), cfg.bridge.clone()]).is_err() {
        return Err(invalid(format!(
            "bridge \"{}\" does not exist on this switch",
            cfg.bridge
        )));
    }
    let f = files(cfg, &env.container_id, &env.ifname);
    // The socket path must fit in sun_path (108 bytes with the NUL).
    if f.socket.as_os_str().len() > 107 {
        return Err(invalid(format!(
            "socket path {} is longer than 107 bytes: shorten \"socketDir\"",
            f.socket.display()
        )));
    }
    let mac = cfg
        .mac
        .clone()
        .or_else(|| env.args.get("MAC").cloned())
        .unwrap_or_else(|| derived_mac(&env.container_id, &env.ifname))
        .to_ascii_lowercase();
    if parse_mac(&mac).is_none() {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_ARGS MAC \"{mac}\" is not a MAC address"),
        ));
    }
    std::fs::create_dir_all(&f.dir).map_err(|e| io_err("cannot create", &f.dir, e))?;
    let ipam_result = match ipam(cfg, env, "ADD") {
        Ok(r) => r,
        Err(e) => {
            let _ = remove_files(&f);
            return Err(e);
        }
    };
    // From here on a failure undoes what was done, so that the runtime's
    // retry starts clean and no address leaks.
    match attach(cfg, env, &port, &mac, &f, &ipam_result) {
        Ok(v) => Ok(v),
        Err(e) => {
            let _ = detach(cfg, env);
            Err(e)
        }
    }
}

fn attach(
    cfg: &Config,
    env: &Env,
    port: &str,
    mac: &str,
    f: &Files,
    ipam_result: &Value,
) -> Result<Value, CniError> {
    let mut args: Vec<String> = vec![
        "add-port".into(),
        cfg.bridge.clone(),
        port.into(),
        "--".into(),
        "set".into(),
        "Interface".into(),
        port.into(),
        format!("type={}", cfg.mode.port_type()),
    ];
    if cfg.mode == Mode::Client {
        args.push(format!(
            "options:vhost-server-path={}",
            quote(&f.socket.display().to_string())
        ));
    }
    let pod = |k: &str| env.args.get(k).cloned().unwrap_or_default();
    for (k, v) in [
        (keys::CONTAINER_ID, env.container_id.clone()),
        (keys::IFNAME, env.ifname.clone()),
        (keys::NETWORK, cfg.name.clone()),
        (keys::POD_NAME, pod("K8S_POD_NAME")),
        (keys::POD_NAMESPACE, pod("K8S_POD_NAMESPACE")),
        (keys::MAC, mac.to_string()),
        (keys::DIR, f.dir.display().to_string()),
    ] {
        if !v.is_empty() {
            args.push(format!("external_ids:{k}={}", quote(&v)));
        }
    }
    if let Some(mtu) = cfg.mtu {
        args.push(format!("mtu_request={mtu}"));
    }
    if let Some(tag) = cfg.vlan {
        args.extend([
            "--".into(),
            "set".into(),
            "Port".into(),
            port.into(),
            format!("tag={tag}"),
        ]);
    }
    db::vsctl(&cfg.control, &args)?;
    if cfg.mode == Mode::Server {
        link_server_socket(cfg, port, &f.socket)?;
    }
    // The switch could not open the port: say why (Interface:error).
    let err = db::vsctl(
        &cfg.control,
        &[
            "get".into(),
            "Interface".into(),
            port.into(),
            "error".into(),
        ],
    )?;
    let err = err.trim();
    if !err.is_empty() && err != "[]" {
        return Err(CniError::new(
            code::PORT_FAILED,
            format!("fvs could not open port {port}: {}", err.trim_matches('"')),
        ));
    }
    let ips = ipam_result.get("ips").cloned().unwrap_or(json!([]));
    let routes = ipam_result.get("routes").cloned().unwrap_or(json!([]));
    let dns = ipam_result.get("dns").cloned().unwrap_or(json!({}));
    let ips: Vec<Value> = ips
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut ip| {
            // Index 1 is the pod's interface (0 is the switch's port).
            ip["interface"] = json!(1);
            ip
        })
        .collect();
    let mut pod_iface = json!({"name": env.ifname, "mac": mac, "sandbox": env.netns});
    if cfg.version != "1.0.0" {
        pod_iface["socketPath"] = json!(f.socket.display().to_string());
    }
    let result = json!({
        "cniVersion": cfg.version,
        "interfaces": [{"name": port}, pod_iface],
        "ips": ips,
        "routes": routes,
        "dns": dns,
    });
    write_description(cfg, env, port, mac, f, &result)?;
    Ok(result)
}

/// In server mode fvs listens on `<rundir>/<vhost-sock-dir>/<port>`; the
/// pod sees it through a hard link in its own directory (a hard link names
/// the same socket; a symlink would point outside the pod's mount).
fn link_server_socket(cfg: &Config, port: &str, to: &Path) -> Result<(), CniError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let sock = db::vsctl(
            &cfg.control,
            &[
                "get".into(),
                "Interface".into(),
                port.into(),
                "status:socket".into(),
            ],
        )
        .ok()
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty());
        if let Some(sock) = sock.filter(|s| Path::new(s).exists()) {
            let _ = std::fs::remove_file(to);
            return std::fs::hard_link(&sock, to).map_err(|e| {
                CniError::new(
                    code::IO,
                    format!(
                        "cannot link fvs's socket {sock} to {}: {e} (\"socketDir\" must be on the filesystem of fvs's run directory in server mode)",
                        to.display()
                    ),
                )
            });
        }
        if std::time::Instant::now() >= deadline {
            return Err(CniError::new(
                code::PORT_FAILED,
                format!("fvs did not open the socket of port {port}"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The file the pod's DPDK app reads: where its socket is and what to be.
fn write_description(
    cfg: &Config,
    env: &Env,
    port: &str,
    mac: &str,
    f: &Files,
    result: &Value,
) -> Result<(), CniError> {
    let ips: Vec<Value> = result["ips"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut ip| {
            if let Some(o) = ip.as_object_mut() {
                o.remove("interface");
            }
            ip
        })
        .collect();
    let d = json!({
        "containerId": env.container_id,
        "ifname": env.ifname,
        "network": cfg.name,
        "bridge": cfg.bridge,
        "port": port,
        "portType": cfg.mode.port_type(),
        "socketPath": f.socket.display().to_string(),
        "socketFile": format!("{}.sock", env.ifname),
        "mode": cfg.mode.app_role(),
        "podName": env.args.get("K8S_POD_NAME"),
        "podNamespace": env.args.get("K8S_POD_NAMESPACE"),
        "mac": mac,
        "vlan": cfg.vlan,
        "mtu": cfg.mtu,
        "ips": ips,
        "routes": result["routes"],
    });
    let tmp = f.json.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(&d).unwrap_or_default() + "\n";
    std::fs::write(&tmp, text).map_err(|e| io_err("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, &f.json).map_err(|e| io_err("cannot write", &f.json, e))
}

/// Removes what ADD made; what is missing already is fine (DEL is idempotent).
fn detach(cfg: &Config, env: &Env) -> Result<(), CniError> {
    let port = port_name(&env.container_id, &env.ifname);
    let mut f = files(cfg, &env.container_id, &env.ifname);
    // Only our own port: a name clash must not delete someone else's.
    if let Some(i) = lookup(cfg, &port)? {
        if owned_by(&i, env) {
            if let Some(dir) = i.external_ids.get(keys::DIR) {
                f = files_in(PathBuf::from(dir), &env.ifname);
            }
            db::vsctl(
                &cfg.control,
                &["--if-exists".into(), "del-port".into(), port],
            )?;
        }
    }
    ipam(cfg, env, "DEL")?;
    remove_files(&f)
}

fn remove_files(f: &Files) -> Result<(), CniError> {
    for p in [&f.socket, &f.json, &f.json.with_extension("json.tmp")] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot remove", p, e)),
        }
    }
    // The pod's directory goes with its last interface.
    if std::fs::read_dir(&f.dir).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(&f.dir);
    }
    Ok(())
}

fn del(cfg: &Config, env: &Env) -> Result<(), CniError> {
    detach(cfg, env)
}

fn check_failed(msg: String) -> CniError {
    CniError::new(code::CHECK_FAILED, msg)
}

fn check(cfg: &Config, env: &Env) -> Result<(), CniError> {
    let prev = cfg
        .prev_result
        .as_ref()
        .ok_or_else(|| invalid("CHECK needs \"prevResult\" in the configuration"))?;
    if !Path::new(&env.netns).exists() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("network namespace {} does not exist", env.netns),
        ));
    }
    let port = port_name(&env.container_id, &env.ifname);
    let i = lookup(cfg, &port)?
        .filter(|i| owned_by(i, env))
        .ok_or_else(|| {
            check_failed(format!(
                "port {port} of container {} is not on the switch",
                env.container_id
            ))
        })?;
    if i.kind != cfg.mode.port_type() {
        return Err(check_failed(format!(
            "port {port} has type {}, not {}",
            i.kind,
            cfg.mode.port_type()
        )));
    }
    let br = db::vsctl(&cfg.control, &["port-to-br".into(), port.clone()])?;
    if br.trim() != cfg.bridge {
        return Err(check_failed(format!(
            "port {port} is on bridge {}, not {}",
            br.trim(),
            cfg.bridge
        )));
    }
    let tag = db::vsctl(
        &cfg.control,
        &["get".into(), "Port".into(), port.clone(), "tag".into()],
    )?;
    let tag = tag.trim().parse::<u16>().ok();
    if tag != cfg.vlan {
        return Err(check_failed(format!(
            "port {port} has VLAN tag {tag:?}, the config says {:?}",
            cfg.vlan
        )));
    }
    let f = files(cfg, &env.container_id, &env.ifname);
    match cfg.mode {
        Mode::Client => {
            let want = f.socket.display().to_string();
            if i.options.get("vhost-server-path") != Some(&want) {
                return Err(check_failed(format!(
                    "port {port} connects to {:?}, not {want}",
                    i.options.get("vhost-server-path")
                )));
            }
        }
        Mode::Server => {
            use std::os::unix::fs::MetadataExt;
            let theirs = i.status.get("socket").cloned().unwrap_or_default();
            let same = match (std::fs::metadata(&theirs), std::fs::metadata(&f.socket)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                return Err(check_failed(format!(
                    "{} is not fvs's socket {theirs} of port {port}",
                    f.socket.display()
                )));
            }
        }
    }
    let desc: Value = std::fs::read(&f.json)
        .map_err(|e| check_failed(format!("cannot read {}: {e}", f.json.display())))
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| check_failed(format!("{} is damaged: {e}", f.json.display())))
        })?;
    let mac = i.external_ids.get(keys::MAC).cloned().unwrap_or_default();
    if desc["mac"].as_str() != Some(mac.as_str())
        || desc["socketPath"].as_str() != Some(f.socket.display().to_string().as_str())
        || desc["port"].as_str() != Some(port.as_str())
    {
        return Err(check_failed(format!(
            "{} does not describe port {port}",
            f.json.display()
        )));
    }
    // The runtime's record of ADD must match what is there.
    let prev_ifaces = prev["interfaces"].as_array().cloned().unwrap_or_default();
    let found = prev_ifaces.iter().any(|x| {
        x["name"].as_str() == Some(env.ifname.as_str()) && x["mac"].as_str() == Some(mac.as_str())
    });
    if !found {
        return Err(check_failed(format!(
            "prevResult has no interface {} with MAC {mac}",
            env.ifname
        )));
    }
    let strip = |v: &Value| -> Vec<Value> {
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut ip| {
                if let Some(o) = ip.as_object_mut() {
                    o.remove("interface");
                }
                ip
            })
            .collect()
    };
    if strip(&prev["ips"]) != strip(&desc["ips"]) {
        return Err(check_failed(format!(
            "prevResult's addresses {} differ from the pod's {}",
            prev["ips"], desc["ips"]
        )));
    }
    ipam(cfg, env, "CHECK")?;
    Ok(())
}

/// GC (1.1.0): removes this network's attachments that are not in
/// `cni.dev/valid-attachments`, releasing their addresses.
fn gc(cfg: &Config, env: &Env) -> Result<(), CniError> {
    let valid = cfg
        .valid_attachments
        .as_ref()
        .ok_or_else(|| invalid("GC needs \"cni.dev/valid-attachments\""))?;
    let ours = db::find_ifaces(
        &cfg.control,
        &[format!(
            "external_ids:{}={}",
            keys::NETWORK,
            quote(&cfg.name)
        )],
    )?;
    for i in ours {
        let (Some(cid), Some(ifname)) = (
            i.external_ids.get(keys::CONTAINER_ID),
            i.external_ids.get(keys::IFNAME),
        ) else {
            continue;
        };
        if valid.iter().any(|(c, n)| c == cid && n == ifname) {
            continue;
        }
        let stale = Env {
            container_id: cid.clone(),
            ifname: ifname.clone(),
            netns: String::new(),
            args: BTreeMap::new(),
            args_raw: String::new(),
            path: env.path.clone(),
        };
        detach(cfg, &stale)?;
    }
    Ok(())
}

/// STATUS (1.1.0): ready when the switch answers and has the bridge.
fn status(cfg: &Config) -> Result<(), CniError> {
    match db::vsctl(&cfg.control, &["br-exists".into(), cfg.bridge.clone()]) {
        Ok(_) => Ok(()),
        Err(DbClientError::Unreachable { path, why }) => Err(CniError::new(
            code::NOT_AVAILABLE,
            format!("fvs-vswitchd is not reachable at {path}: {why}"),
        )),
        Err(_) => Err(CniError::new(
            code::NOT_AVAILABLE,
            format!("bridge \"{}\" does not exist on this switch", cfg.bridge),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(vars: &[(&str, &str)], stdin: &str) -> (Value, u8) {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let o = run(&|k| vars.get(k).cloned(), stdin.as_bytes());
        let v = if o.stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&o.stdout).expect("stdout is JSON")
        };
        (v, o.status)
    }

    const ENV: [(&str, &str); 4] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/proc/self/ns/net"),
        ("CNI_IFNAME", "net1"),
    ];

    fn code_of(stdin: &str, vars: &[(&str, &str)]) -> u64 {
        let (v, st) = run_with(vars, stdin);
        assert_eq!(st, 1, "{v}");
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v["code"].as_u64().expect("code")
    }

    #[test]
    fn version_lists_supported() {
        let (v, st) = run_with(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
        assert_eq!(st, 0);
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["supportedVersions"], json!(["1.0.0", "1.1.0"]));
    }

    #[test]
    fn error_codes_of_bad_input() {
        let ok = r#"{"cniVersion":"1.0.0","name":"n","type":"fvs-cni","bridge":"br0","fvsSocket":"/nonexistent/fvs.ctl"}"#;
        assert_eq!(code_of("{not json", &ENV), 6);
        assert_eq!(
            code_of(r#"{"cniVersion":"0.3.1","name":"n","bridge":"b"}"#, &ENV),
            1
        );
        assert_eq!(code_of(r#"{"cniVersion":"1.0.0","name":"n"}"#, &ENV), 7);
        assert_eq!(
            code_of(
                r#"{"cniVersion":"1.0.0","name":"n","bridge":"b","vlan":5000}"#,
                &ENV
            ),
            7
        );
        assert_eq!(
            code_of(
                r#"{"cniVersion":"1.0.0","name":"n","bridge":"b","mode":"both"}"#,
                &ENV
            ),
            7
        );
        assert_eq!(
            code_of(
                r#"{"cniVersion":"1.0.0","name":"n","bridge":"b","runtimeConfig":{"deviceID":".."}}"#,
                &ENV
            ),
            7
        );
        assert_eq!(
            code_of(
                r#"{"cniVersion":"1.0.0","name":"n","bridge":"b","ipMasq":true}"#,
                &ENV
            ),
            2
        );
        assert_eq!(code_of(ok, &[("CNI_COMMAND", "ADD")]), 4);
        assert_eq!(code_of(ok, &[("CNI_COMMAND", "FROB")]), 4);
        let mut bad_id = ENV.to_vec();
        bad_id[1] = ("CNI_CONTAINERID", "../etc");
        assert_eq!(code_of(ok, &bad_id), 4);
        let mut no_ns = ENV.to_vec();
        no_ns[2] = ("CNI_NETNS", "/var/run/netns/surely-not-there");
        assert_eq!(code_of(ok, &no_ns), 3);
        // No switch: transient, the runtime retries.
        assert_eq!(code_of(ok, &ENV), 11);
        // GC and STATUS are 1.1.0 verbs.
        assert_eq!(code_of(ok, &[("CNI_COMMAND", "STATUS")]), 1);
        let ok11 = ok.replace("1.0.0", "1.1.0");
        assert_eq!(code_of(&ok11, &[("CNI_COMMAND", "STATUS")]), 50);
        let (v, _) = run_with(&ENV, &ok11);
        assert_eq!(v["cniVersion"], "1.1.0");
    }

    #[test]
    fn names_and_macs() {
        let id = "0123456789abcdef0123";
        assert_eq!(port_name(id, "net1"), "0123456789ab-net1");
        let m = derived_mac(id, "net1");
        let b = parse_mac(&m).expect("valid");
        assert_eq!(b[0], 0x02, "locally administered unicast");
        assert_eq!(m, derived_mac(id, "net1"));
        assert_ne!(m, derived_mac(id, "net2"));
        assert!(parse_mac("02:00:00:00:00").is_none());
        assert!(parse_mac("02:00:00:00:00:0g").is_none());
    }
}
