//! fvs-cni, invoked exactly as a container runtime invokes a CNI plugin
//! (`CNI_*` variables, the network config on stdin, an empty environment
//! otherwise), with network namespaces as pods and host-local as IPAM.
//! Pod A's port is of client mode (fvs connects, the app listens), pod B's
//! of server mode (fvs listens, the socket hard-linked into the pod's
//! directory). In each pod DPDK's testpmd attaches by virtio-user to the
//! socket named in the JSON file ADD wrote, and exactly N frames sent by
//! each arrive at the other through fvs. Then CHECK, ADD twice, DEL twice,
//! DEL without ADD, GC and STATUS, and bad configs giving the spec's error
//! codes; DEL leaves no port, socket, file or address behind.

mod e2e;
mod vhost_peers;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{bin, can_run, serial, sh, Switch};
use serde_json::{json, Value};
use vhost_peers::{can_use_testpmd, Testpmd, VirtioUser};

const BURSTS: u64 = 8;
const N: u64 = BURSTS * 32;
const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

/// A pod: a network namespace, deleted when dropped.
struct Pod {
    ns: String,
    id: String,
}

impl Pod {
    fn new(tag: &str) -> Pod {
        let ns = format!("fvscni{}{tag}", std::process::id() % 100_000);
        let o = sh(&["ip", "netns", "add", &ns]);
        assert!(o.status.success(), "ip netns add {ns}: {o:?}");
        // A container id as runtimes make them: 64 hex digits.
        let seed = format!("{tag}{:011x}", std::process::id());
        let id: String = seed.repeat(6).chars().take(64).collect();
        Pod { ns, id }
    }

    fn netns(&self) -> String {
        format!("/var/run/netns/{}", self.ns)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// One plugin run: (stdout as JSON or Null, exit code).
fn cni(command: &str, env: &[(&str, String)], conf: &Value) -> (Value, i32) {
    cni_raw(command, env, conf.to_string().as_bytes())
}

fn cni_raw(command: &str, env: &[(&str, String)], stdin: &[u8]) -> (Value, i32) {
    let mut cmd = Command::new(bin("fvs-cni"));
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/usr/lib/cni")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn fvs-cni");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write config");
    let out = child.wait_with_output().expect("fvs-cni");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("fvs-cni printed non-JSON ({e}): {text}"))
    };
    (v, out.status.code().unwrap_or(-1))
}

fn pod_env(pod: &Pod, ifname: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_CONTAINERID", pod.id.clone()),
        ("CNI_NETNS", pod.netns()),
        ("CNI_IFNAME", ifname.to_string()),
        // What kubelet passes.
        (
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-{};K8S_POD_INFRA_CONTAINER_ID={}",
                pod.ns, pod.id
            ),
        ),
    ]
}

/// Asserts an error result with `code` and a message.
fn assert_error(what: &str, (v, rc): (Value, i32), code: u64) {
    assert_eq!(rc, 1, "{what}: exit status; output {v}");
    assert_eq!(v["code"].as_u64(), Some(code), "{what}: {v}");
    assert!(
        v["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message: {v}"
    );
    assert!(v["cniVersion"].is_string(), "{what}: {v}");
}

fn list_ports(sw: &Switch, br: &str) -> Vec<String> {
    sw.vsctl(&["list-ports", br])
        .lines()
        .map(String::from)
        .collect()
}

/// Addresses host-local holds (one file per address in a directory per
/// network under its data dir).
fn reservations(ipam_dir: &Path) -> Vec<String> {
    let mut held = Vec::new();
    for net in std::fs::read_dir(ipam_dir).into_iter().flatten().flatten() {
        for e in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().to_string();
            if n.parse::<std::net::IpAddr>().is_ok() {
                held.push(n);
            }
        }
    }
    held
}

fn send_and_count(a: &mut Testpmd, b: &mut Testpmd, sw: &Switch) {
    for tp in [&mut *a, &mut *b] {
        tp.cmd("stop", Duration::from_millis(200));
        tp.cmd("clear port stats all", Duration::from_millis(200));
    }
    a.cmd(
        &format!("start tx_first {BURSTS}"),
        Duration::from_millis(300),
    );
    b.cmd(
        &format!("start tx_first {BURSTS}"),
        Duration::from_millis(300),
    );
    for _ in 0..50 {
        let (sa, sb) = (a.stats(), b.stats());
        if sa.first().is_some_and(|s| s.0 >= N) && sb.first().is_some_and(|s| s.0 >= N) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (sa, sb),
        (vec![(N, N)], vec![(N, N)]),
        "testpmd (rx, tx) in pod A, pod B\n{}",
        sw.log()
    );
}

#[test]
fn cni_plugin_attaches_pods_passes_traffic_and_cleans_up() {
    let test = "cni_plugin_attaches_pods_passes_traffic_and_cleans_up";
    if !can_run(test) || !can_use_testpmd(test) {
        return;
    }
    if !Path::new(HOST_LOCAL).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: needs {HOST_LOCAL} (apt-get install containernetworking-plugins)"
        );
        eprintln!("skipping {test}: needs {HOST_LOCAL}");
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    let pods_dir = sw.dir.join("pods");
    let ipam_dir = sw.dir.join("ipam");
    let conf = |mode: &str| {
        json!({
            "cniVersion": "1.0.0",
            "name": "fvsnet",
            "type": "fvs-cni",
            "bridge": br,
            "mode": mode,
            "vlan": 100,
            "fvsSocket": sw.socket(),
            "socketDir": pods_dir,
            "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": ipam_dir},
        })
    };
    let (conf_a, conf_b) = (conf("client"), conf("server"));
    let pod_a = Pod::new("a");
    let pod_b = Pod::new("b");
    let (env_a, env_b) = (pod_env(&pod_a, "net1"), pod_env(&pod_b, "net1"));

    // ADD: results as the spec shapes them.
    let (res_a, rc) = cni("ADD", &env_a, &conf_a);
    assert_eq!(rc, 0, "ADD a: {res_a}");
    let (res_b, rc) = cni("ADD", &env_b, &conf_b);
    assert_eq!(rc, 0, "ADD b: {res_b}");
    for (res, pod) in [(&res_a, &pod_a), (&res_b, &pod_b)] {
        assert_eq!(res["cniVersion"], "1.0.0");
        assert_eq!(res["interfaces"][1]["name"], "net1", "{res}");
        assert_eq!(
            res["interfaces"][1]["sandbox"],
            pod.netns().as_str(),
            "{res}"
        );
        assert_eq!(res["ips"][0]["interface"], 1, "{res}");
        let ip = res["ips"][0]["address"].as_str().unwrap_or_default();
        assert!(ip.starts_with("10.77.0.") && ip.ends_with("/24"), "{res}");
    }
    assert_ne!(res_a["ips"][0]["address"], res_b["ips"][0]["address"]);
    let port_a = format!("{}-net1", &pod_a.id[..12]);
    let port_b = format!("{}-net1", &pod_b.id[..12]);
    assert_eq!(res_a["interfaces"][0]["name"], port_a.as_str());
    let mut ports = list_ports(&sw, &br);
    ports.sort();
    let mut want = vec![port_a.clone(), port_b.clone()];
    want.sort();
    assert_eq!(ports, want);
    assert_eq!(sw.get("Interface", &port_a, "type"), "dpdkvhostuserclient");
    assert_eq!(sw.get("Interface", &port_b, "type"), "dpdkvhostuser");
    assert_eq!(sw.get("Port", &port_a, "tag"), "100");
    assert_eq!(
        sw.get("Interface", &port_a, "external_ids:container_id"),
        pod_a.id
    );
    assert_eq!(
        sw.get("Interface", &port_a, "external_ids:pod_name"),
        format!("pod-{}", pod_a.ns)
    );
    assert_eq!(
        sw.get("Interface", &port_a, "external_ids:pod_namespace"),
        "default"
    );
    assert_eq!(reservations(&ipam_dir).len(), 2);

    // The pods' DPDK apps read the files ADD wrote.
    let desc = |pod: &Pod| -> Value {
        let p = pods_dir.join(&pod.id).join("net1.json");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).expect("description is JSON")
    };
    let (da, db) = (desc(&pod_a), desc(&pod_b));
    assert_eq!(da["mode"], "server", "pod A's app listens: {da}");
    assert_eq!(db["mode"], "client", "pod B's app connects: {db}");
    assert_eq!(da["mac"], res_a["interfaces"][1]["mac"]);
    assert_eq!(da["ips"][0]["address"], res_a["ips"][0]["address"]);
    let virtio = |d: &Value| VirtioUser {
        path: PathBuf::from(d["socketPath"].as_str().expect("socketPath")),
        server: d["mode"] == "server",
    };
    assert!(
        virtio(&db).path.exists(),
        "server-mode socket linked into pod B's directory"
    );
    // Each pod's DPDK app, in the pod's namespace, with the MAC the plugin gave it.
    let mac = |d: &Value| d["mac"].as_str().expect("mac").to_string();
    let (mac_a, mac_b) = (mac(&da), mac(&db));
    let mut tp_a = Testpmd::start_in(&sw.dir, "a", &[virtio(&da)], Some(&pod_a.ns), &[&mac_a]);
    let mut tp_b = Testpmd::start_in(&sw.dir, "b", &[virtio(&db)], Some(&pod_b.ns), &[&mac_b]);
    for (tp, m) in [(&mut tp_a, &mac_a), (&mut tp_b, &mac_b)] {
        let info = tp.cmd("show port info 0", Duration::from_millis(300));
        assert!(
            info.to_lowercase().contains(&m.to_lowercase()),
            "testpmd's port has the MAC from the pod's file ({m}):\n{info}"
        );
    }
    sw.wait_for(20, "both vhost-user links up", || {
        sw.get("Interface", &port_a, "link_state") == "up"
            && sw.get("Interface", &port_b, "link_state") == "up"
    });
    send_and_count(&mut tp_a, &mut tp_b, &sw);

    // CHECK: what ADD made is there; a prevResult that lies is caught.
    let with_prev = |c: &Value, prev: &Value| {
        let mut c = c.clone();
        c["prevResult"] = prev.clone();
        c
    };
    assert_eq!(
        cni("CHECK", &env_a, &with_prev(&conf_a, &res_a)),
        (Value::Null, 0)
    );
    assert_eq!(
        cni("CHECK", &env_b, &with_prev(&conf_b, &res_b)),
        (Value::Null, 0)
    );
    let mut lie = res_a.clone();
    lie["ips"][0]["address"] = json!("10.77.0.250/24");
    assert_error(
        "CHECK, wrong address",
        cni("CHECK", &env_a, &with_prev(&conf_a, &lie)),
        102,
    );
    assert_error("CHECK without prevResult", cni("CHECK", &env_a, &conf_a), 7);
    // Config drift: CHECK with another VLAN than the port has.
    let mut other_vlan = with_prev(&conf_a, &res_a);
    other_vlan["vlan"] = json!(200);
    assert_error("CHECK, other VLAN", cni("CHECK", &env_a, &other_vlan), 102);

    // ADD twice: refused, and the attachment is untouched (no second
    // port, no second address, traffic still flows).
    assert_error("second ADD", cni("ADD", &env_a, &conf_a), 100);
    assert_eq!(list_ports(&sw, &br).len(), 2);
    assert_eq!(reservations(&ipam_dir).len(), 2);
    send_and_count(&mut tp_a, &mut tp_b, &sw);
    drop(tp_a);
    drop(tp_b);

    // DEL, twice each, and DEL of a container never added: all succeed
    // with no output; nothing is left.
    for _ in 0..2 {
        assert_eq!(cni("DEL", &env_a, &conf_a), (Value::Null, 0));
        assert_eq!(cni("DEL", &env_b, &conf_b), (Value::Null, 0));
    }
    let stranger = vec![
        ("CNI_CONTAINERID", "f".repeat(64)),
        ("CNI_NETNS", String::new()),
        ("CNI_IFNAME", "net1".to_string()),
    ];
    assert_eq!(cni("DEL", &stranger, &conf_a), (Value::Null, 0));
    assert!(
        list_ports(&sw, &br).is_empty(),
        "ports left: {:?}",
        list_ports(&sw, &br)
    );
    assert!(
        reservations(&ipam_dir).is_empty(),
        "addresses left: {:?}",
        reservations(&ipam_dir)
    );
    let left: Vec<_> = std::fs::read_dir(&pods_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "files left in the pods' directory: {left:?}"
    );
    assert!(
        !sw.dir.join("run").join(&port_b).exists(),
        "fvs's server socket of the deleted port is left"
    );

    // 1.1.0: STATUS, and GC of an attachment the runtime no longer knows.
    let mut conf11 = conf_a.clone();
    conf11["cniVersion"] = json!("1.1.0");
    assert_eq!(cni("STATUS", &[], &conf11), (Value::Null, 0));
    // A device plugin's slot (runtimeConfig.deviceID, as Multus passes it)
    // names the pod's directory instead of the container id.
    let mut slotted = conf11.clone();
    slotted["runtimeConfig"] = json!({"deviceID": "slot0"});
    let (res, rc) = cni("ADD", &env_a, &slotted);
    assert_eq!(rc, 0, "ADD 1.1.0: {res}");
    let slot_sock = pods_dir.join("slot0/net1.sock");
    assert_eq!(
        res["interfaces"][1]["socketPath"],
        slot_sock.display().to_string(),
        "1.1.0 results carry the socket path"
    );
    assert!(pods_dir.join("slot0/net1.json").exists());
    assert_eq!(
        sw.get("Interface", &port_a, "options:vhost-server-path"),
        slot_sock.display().to_string()
    );
    let mut gc = conf11.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": pod_b.id, "ifname": "net1"}]);
    assert_eq!(cni("GC", &[], &gc), (Value::Null, 0));
    assert!(
        list_ports(&sw, &br).is_empty(),
        "GC left {:?}",
        list_ports(&sw, &br)
    );
    assert!(reservations(&ipam_dir).is_empty());

    // Bad configs and environments: the spec's codes, nothing created.
    assert_error(
        "undecodable config",
        cni_raw("ADD", &env_a, b"{\"cniVersion\": "),
        6,
    );
    let mut v = conf_a.clone();
    v["cniVersion"] = json!("0.3.1");
    assert_error("old cniVersion", cni("ADD", &env_a, &v), 1);
    let mut v = conf_a.clone();
    v.as_object_mut().expect("object").remove("bridge");
    assert_error("no bridge", cni("ADD", &env_a, &v), 7);
    let mut v = conf_a.clone();
    v["bridge"] = json!("no-such-br");
    assert_error("unknown bridge", cni("ADD", &env_a, &v), 7);
    let mut v = conf_a.clone();
    v["vlan"] = json!(4095);
    assert_error("VLAN out of range", cni("ADD", &env_a, &v), 7);
    let mut v = conf_a.clone();
    v["ipMasq"] = json!(true);
    assert_error("a bridge-plugin field", cni("ADD", &env_a, &v), 2);
    let mut v = conf_a.clone();
    v["ipam"]["type"] = json!("no-such-ipam");
    assert_error("missing IPAM plugin", cni("ADD", &env_a, &v), 5);
    let mut v = conf_a.clone();
    v["fvsSocket"] = json!(sw.dir.join("run/nobody.ctl"));
    assert_error("switch not running", cni("ADD", &env_a, &v), 11);
    let no_id: Vec<_> = env_a
        .iter()
        .filter(|(k, _)| *k != "CNI_CONTAINERID")
        .cloned()
        .collect();
    assert_error("no CNI_CONTAINERID", cni("ADD", &no_id, &conf_a), 4);
    let mut gone = env_a.clone();
    gone[1].1 = "/var/run/netns/fvscni-never-made".into();
    assert_error("no such netns", cni("ADD", &gone, &conf_a), 3);
    assert!(list_ports(&sw, &br).is_empty());
    assert!(reservations(&ipam_dir).is_empty());
    let left: Vec<_> = std::fs::read_dir(&pods_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "failed ADDs left files: {left:?}");

    // The examples: the plugin-alone config, and the fvs delegates of the
    // Multus list attaching one pod with two interfaces, as Multus calls
    // them (net1, net2); only the paths and the bridge are this test's.
    let example = |name: &str| -> Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/cni")
            .join(name);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let local = |mut c: Value| {
        c["bridge"] = json!(br);
        c["fvsSocket"] = json!(sw.socket());
        c["socketDir"] = json!(pods_dir);
        c["ipam"]["dataDir"] = json!(ipam_dir);
        c
    };
    let alone = local(example("10-fvs.conf"));
    let (res, rc) = cni("ADD", &env_a, &alone);
    assert_eq!(rc, 0, "ADD with examples/cni/10-fvs.conf: {res}");
    assert!(
        res["ips"][0]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("192.168.100.")),
        "{res}"
    );
    assert_eq!(sw.get("Port", &port_a, "tag"), "100");
    assert_eq!(cni("DEL", &env_a, &alone), (Value::Null, 0));
    let multus = example("10-multus.conf");
    let delegates = multus["delegates"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        delegates[0]["plugins"][0]["type"], "flannel",
        "flannel is the master"
    );
    let fvs: Vec<Value> = delegates
        .into_iter()
        .filter(|d| d["type"] == "fvs-cni")
        .map(local)
        .collect();
    assert_eq!(fvs.len(), 2, "two fvs interfaces");
    for (i, d) in fvs.iter().enumerate() {
        let (res, rc) = cni("ADD", &pod_env(&pod_b, &format!("net{}", i + 1)), d);
        assert_eq!(rc, 0, "ADD of Multus delegate {i}: {res}");
    }
    let net2 = format!("{}-net2", &pod_b.id[..12]);
    assert_eq!(list_ports(&sw, &br).len(), 2);
    assert_eq!(sw.get("Interface", &net2, "type"), "dpdkvhostuser");
    assert_eq!(sw.get("Port", &net2, "tag"), "200");
    assert_eq!(reservations(&ipam_dir).len(), 2);
    for (i, d) in fvs.iter().enumerate() {
        let env = pod_env(&pod_b, &format!("net{}", i + 1));
        assert_eq!(cni("DEL", &env, d), (Value::Null, 0));
    }
    assert!(list_ports(&sw, &br).is_empty());
    assert!(reservations(&ipam_dir).is_empty());

    // VERSION.
    let (v, rc) = cni_raw("VERSION", &[], br#"{"cniVersion":"1.0.0"}"#);
    assert_eq!(rc, 0);
    assert_eq!(v["supportedVersions"], json!(["1.0.0", "1.1.0"]));
}
