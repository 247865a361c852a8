//! The daemon's control socket: JSON-RPC over a unix stream socket, in the
//! format of OVS's unixctl (`{"method":…,"params":[…],"id":…}` answered by
//! `{"result":…,"error":…,"id":…}`), so that `fvs-appctl` (and even
//! `ovs-appctl -t SOCKET`) can drive it. Methods of fvs's own CLIs may pass
//! structured JSON instead of strings.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    #[serde(default)]
    pub params: Vec<Value>,
    pub id: Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub result: Value,
    pub error: Value,
    pub id: Value,
}

#[derive(Debug, Error)]
pub enum UnixctlError {
    #[error("{path}: cannot connect ({source}); is fvs-vswitchd running?")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: malformed reply: {reason}")]
    Protocol { path: String, reason: String },
    /// The daemon answered with an error.
    #[error("{0}")]
    Remote(String),
}

/// Where the CLIs find the daemon: `$FVS_RUNDIR` (default `/var/run/fvs`).
pub fn rundir() -> PathBuf {
    std::env::var_os("FVS_RUNDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/fvs"))
}

/// The daemon's default control socket.
pub fn default_socket() -> PathBuf {
    rundir().join("fvs-vswitchd.ctl")
}

/// Resolves an `-t TARGET` as ovs-appctl does: a path if it contains a
/// slash, else a daemon name whose socket is `NAME.ctl` in the run directory
/// (or `NAME.PID.ctl` found through `NAME.pid`).
pub fn resolve_target(target: &str) -> PathBuf {
    if target.contains('/') {
        return PathBuf::from(target);
    }
    let dir = rundir();
    let plain = dir.join(format!("{target}.ctl"));
    if plain.exists() {
        return plain;
    }
    if let Ok(pid) = std::fs::read_to_string(dir.join(format!("{target}.pid"))) {
        let with_pid = dir.join(format!("{target}.{}.ctl", pid.trim()));
        if with_pid.exists() {
            return with_pid;
        }
    }
    plain
}

/// Calls `method` on the daemon at `path`.
pub fn call(
    path: &Path,
    method: &str,
    params: Vec<Value>,
    timeout: Option<Duration>,
) -> Result<Value, UnixctlError> {
    let p = path.display().to_string();
    let mut s = UnixStream::connect(path).map_err(|source| UnixctlError::Connect {
        path: p.clone(),
        source,
    })?;
    let io = |source| UnixctlError::Io {
        path: p.clone(),
        source,
    };
    s.set_read_timeout(timeout).map_err(io)?;
    let req = Request {
        method: method.to_string(),
        params,
        id: Value::from(0),
    };
    let bytes = serde_json::to_vec(&req).map_err(|e| UnixctlError::Protocol {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    s.write_all(&bytes).map_err(io)?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(s)).into_iter::<Reply>();
    let reply = match de.next() {
        Some(Ok(r)) => r,
        Some(Err(e)) if e.is_io() => {
            return Err(UnixctlError::Io {
                path: p,
                source: std::io::Error::other(e.to_string()),
            })
        }
        Some(Err(e)) => {
            return Err(UnixctlError::Protocol {
                path: p,
                reason: e.to_string(),
            })
        }
        None => {
            return Err(UnixctlError::Protocol {
                path: p,
                reason: "connection closed without a reply".into(),
            })
        }
    };
    if !reply.error.is_null() {
        let msg = match reply.error {
            Value::String(s) => s,
            other => other.to_string(),
        };
        return Err(UnixctlError::Remote(msg));
    }
    Ok(reply.result)
}

/// A method handler: takes the params, returns the result or an error text.
pub type Handler = Box<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// The server side: a table of methods served on a socket.
#[derive(Default)]
pub struct Server {
    methods: Mutex<HashMap<String, Arc<Handler>>>,
}

/// Converts params that should all be strings (ovs-appctl sends strings).
pub fn string_params(params: &[Value]) -> Result<Vec<String>, String> {
    params
        .iter()
        .map(|p| match p {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected string arguments, got {other}")),
        })
        .collect()
}

impl Server {
    pub fn new() -> Arc<Server> {
        Arc::new(Server::default())
    }

    pub fn register(
        &self,
        method: &str,
        handler: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) {
        self.methods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(method.to_string(), Arc::new(Box::new(handler)));
    }

    /// Registers a method taking and returning text (ovs-appctl style).
    pub fn register_text(
        &self,
        method: &str,
        handler: impl Fn(&[String]) -> Result<String, String> + Send + Sync + 'static,
    ) {
        self.register(method, move |params| {
            handler(&string_params(params)?).map(Value::String)
        });
    }

    pub fn methods(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .methods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    fn dispatch(&self, req: &Request) -> Reply {
        let handler = self
            .methods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&req.method)
            .cloned();
        let (result, error) = match handler {
            None => (
                Value::Null,
                Value::String(format!("\"{}\" is not a valid command", req.method)),
            ),
            Some(h) => match h(&req.params) {
                Ok(v) => (v, Value::Null),
                Err(e) => (Value::Null, Value::String(e)),
            },
        };
        Reply {
            result,
            error,
            id: req.id.clone(),
        }
    }

    /// Serves `path` (mode 0750) on a thread per connection until `stop` is set.
    pub fn serve(
        self: &Arc<Server>,
        path: &Path,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o750))?;
        listener.set_nonblocking(true)?;
        let server = self.clone();
        std::thread::Builder::new()
            .name("unixctl".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let server = server.clone();
                            let _ = std::thread::Builder::new()
                                .name("unixctl-conn".into())
                                .spawn(move || server.connection(stream));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
    }

    fn connection(&self, stream: UnixStream) {
        let _ = stream.set_nonblocking(false);
        let Ok(mut out) = stream.try_clone() else {
            return;
        };
        let reader = BufReader::new(stream);
        for req in
            serde_json::Deserializer::from_reader(reader.take(64 << 20)).into_iter::<Request>()
        {
            let reply = match req {
                Ok(req) => self.dispatch(&req),
                Err(e) if e.is_io() || e.is_eof() => return,
                Err(e) => Reply {
                    result: Value::Null,
                    error: Value::String(format!("malformed request: {e}")),
                    id: Value::Null,
                },
            };
            let Ok(bytes) = serde_json::to_vec(&reply) else {
                return;
            };
            if out.write_all(&bytes).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_and_errors() {
        let dir = std::env::temp_dir().join(format!("fvs-unixctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.ctl");
        let server = Server::new();
        server.register_text("echo", |a| Ok(a.join(" ")));
        server.register_text("fail", |_| Err("no such thing".into()));
        let stop = Arc::new(AtomicBool::new(false));
        let t = server.serve(&path, stop.clone()).unwrap();
        let v = call(&path, "echo", vec!["a".into(), "b".into()], None).unwrap();
        assert_eq!(v, Value::String("a b".into()));
        match call(&path, "fail", vec![], None) {
            Err(UnixctlError::Remote(m)) => assert_eq!(m, "no such thing"),
            other => panic!("{other:?}"),
        }
        match call(&path, "nope", vec![], None) {
            Err(UnixctlError::Remote(m)) => assert_eq!(m, "\"nope\" is not a valid command"),
            other => panic!("{other:?}"),
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
