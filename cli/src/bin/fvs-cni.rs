//! fvs-cni: the CNI plugin that attaches pods to fvs through vhost-user
//! ports (see `fvs_cli::cni`). The runtime runs it with `CNI_*` variables
//! and the network config on stdin; it prints a result or an error JSON.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        // An unreadable stdin is an undecodable config (error code 6).
        println!(
            "{{\"cniVersion\":\"1.0.0\",\"code\":6,\"msg\":\"cannot read the network configuration: {}\"}}",
            e.to_string().replace('"', "'")
        );
        return ExitCode::from(1);
    }
    let out = fvs_cli::cni::run(&|k| std::env::var(k).ok(), &stdin);
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.stdout.as_bytes());
    let _ = so.flush();
    ExitCode::from(out.status)
}
