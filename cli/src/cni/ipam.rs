//! Delegation to the IPAM plugin the network config names (`ipam.type`),
//! found in `CNI_PATH` and run as the runtime ran us: same environment
//! (with `CNI_COMMAND` set), the same network config on stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::CniError;

/// Finds plugin `kind` in the `CNI_PATH` directories.
pub fn find(kind: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if kind.is_empty() || kind.contains('/') {
        return Err(CniError::new(7, format!("bad IPAM plugin type \"{kind}\"")));
    }
    path.iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let dirs: Vec<String> = path.iter().map(|d| d.display().to_string()).collect();
            CniError::new(
                5,
                format!(
                    "IPAM plugin \"{kind}\" not found in CNI_PATH [{}]",
                    dirs.join(":")
                ),
            )
        })
}

/// Runs `plugin` with `command` (ADD, DEL, CHECK), the runtime's `CNI_*`
/// variables `env` and `config` on stdin.
/// Returns its result (ADD) or `Value::Null`; its error JSON becomes ours.
pub fn exec(
    plugin: &Path,
    command: &str,
    config: &[u8],
    env: &[(&str, String)],
) -> Result<Value, CniError> {
    let mut child = Command::new(plugin)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CniError::new(
                5,
                format!("cannot run IPAM plugin {}: {e}", plugin.display()),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits without reading its stdin is judged by its output.
        let _ = stdin.write_all(config);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::new(5, format!("IPAM plugin {}: {e}", plugin.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The delegate's own error (code, msg) passes through, as the spec
        // asks; otherwise describe what it printed.
        if let Ok(v) = serde_json::from_str::<Value>(&stdout) {
            if let Some(code) = v.get("code").and_then(Value::as_u64) {
                let msg = v.get("msg").and_then(Value::as_str).unwrap_or_default();
                let details = v.get("details").and_then(Value::as_str).unwrap_or_default();
                return Err(CniError {
                    code: u32::try_from(code).unwrap_or(999),
                    msg: format!("IPAM plugin {} {command}: {msg}", plugin.display()),
                    details: details.to_string(),
                });
            }
        }
        return Err(CniError::new(
            5,
            format!(
                "IPAM plugin {} {command} failed ({}): {}{}",
                plugin.display(),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    if stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&stdout).map_err(|e| {
        CniError::new(
            6,
            format!(
                "IPAM plugin {} {command}: cannot decode its result: {e}",
                plugin.display()
            ),
        )
    })
}
