//! fvs-vswitchd: the switch daemon. Reads its configuration from the
//! database, runs the PMD threads, and serves fvs-vsctl, fvs-ofctl and
//! fvs-appctl on its control socket.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fvs_cli::daemon::run::Vswitchd;
use fvs_cli::daemon::vlog::Vlog;
use fvs_cli::daemon::{appctl, privs, Daemon};
use fvs_cli::unixctl::{self, Server};

const USAGE: &str = "\
fvs-vswitchd: Ferrous vSwitch daemon
usage: fvs-vswitchd [OPTIONS] [DATABASE]
where DATABASE is the configuration database file
(default: $FVS_DBDIR/conf.db, FVS_DBDIR defaulting to /etc/fvs).

Daemon options:
  --detach                run in background as daemon
  --pidfile[=FILE]        create pidfile (default: $FVS_RUNDIR/fvs-vswitchd.pid)
  --no-chdir              do not chdir to '/' (accepted; fvs never changes directory)
  --monitor               accepted for compatibility
  --user=USER[:GROUP]     after opening the database and log, run as USER
                          (and GROUP), keeping only CAP_NET_ADMIN,
                          CAP_NET_RAW and CAP_IPC_LOCK
Logging options:
  --log-file[=FILE]       log to FILE (default: $FVS_LOGDIR/fvs-vswitchd.log)
  -v, --verbose           log debug messages too
Other options:
  --unixctl=SOCKET        override default control socket name
  -h, --help              display this help message
  -V, --version           display version information";

static STOP: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, Ordering::Relaxed);
}

fn install_signal(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: the sigaction struct is zero-initialised plain data, filled
    // before the call; the handlers only store to atomics (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

fn env_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

struct Options {
    detach: bool,
    pidfile: Option<PathBuf>,
    log_file: Option<PathBuf>,
    unixctl: PathBuf,
    db: PathBuf,
    verbose: bool,
    user: Option<String>,
}

fn parse_args() -> Result<Option<Options>, String> {
    let rundir = unixctl::rundir();
    let logdir = env_dir("FVS_LOGDIR", "/var/log/fvs");
    let dbdir = env_dir("FVS_DBDIR", "/etc/fvs");
    let mut o = Options {
        detach: false,
        pidfile: None,
        log_file: None,
        unixctl: unixctl::default_socket(),
        db: dbdir.join("conf.db"),
        verbose: false,
        user: None,
    };
    let mut args = fvs_cli::args::from_env()?.into_iter();
    while let Some(a) = args.next() {
        let (name, value) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("{}", appctl::VERSION);
                return Ok(None);
            }
            "--detach" => o.detach = true,
            "--pidfile" => {
                o.pidfile = Some(
                    value
                        .map(PathBuf::from)
                        .unwrap_or_else(|| rundir.join("fvs-vswitchd.pid")),
                )
            }
            "--log-file" => {
                o.log_file = Some(
                    value
                        .map(PathBuf::from)
                        .unwrap_or_else(|| logdir.join("fvs-vswitchd.log")),
                )
            }
            "--unixctl" => {
                o.unixctl = PathBuf::from(value.ok_or("option '--unixctl' requires an argument")?)
            }
            "--user" => {
                o.user = Some(
                    value
                        .or_else(|| args.next())
                        .ok_or("option '--user' requires an argument")?,
                )
            }
            "--no-chdir" | "--monitor" | "--mlockall" => {}
            "-v" | "--verbose" => o.verbose = true,
            s if s.starts_with('-') => return Err(format!("unrecognized option '{a}'")),
            _ => {
                // OVS takes a database remote; fvs takes the file (unix: remotes of
                // ovsdb-server have no meaning here).
                if let Some(p) = a.strip_prefix("unix:").or_else(|| a.strip_prefix("file:")) {
                    o.db = PathBuf::from(p);
                } else {
                    o.db = PathBuf::from(&a);
                }
            }
        }
    }
    Ok(Some(o))
}

/// Forks: the parent waits until the child reports it is ready (or why it
/// failed) and exits with that status; the child returns the pipe to report on.
fn detach() -> Result<Option<OwnedFd>, String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe() to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe failed: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the process is still single-threaded here, so the child may
    // run arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe() just returned these descriptors and nothing else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if pid > 0 {
        drop(w);
        let mut status = String::new();
        let _ = std::fs::File::from(r).read_to_string(&mut status);
        if status == "ok" {
            std::process::exit(0);
        }
        if !status.is_empty() {
            eprintln!("fvs-vswitchd: {status}");
        } else {
            eprintln!("fvs-vswitchd: child exited before becoming ready");
        }
        std::process::exit(1);
    }
    drop(r);
    // SAFETY: setsid has no memory-safety preconditions.
    unsafe { libc::setsid() };
    Ok(Some(w))
}

fn report(ready: &mut Option<OwnedFd>, msg: &str) {
    if let Some(fd) = ready.take() {
        let _ = std::fs::File::from(fd).write_all(msg.as_bytes());
    }
}

fn redirect_stdio_to_null() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors; `null` stays open for the call.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fvs-vswitchd: {e} (use --help for help)");
            return ExitCode::from(1);
        }
    };
    let mut ready = if opts.detach {
        match detach() {
            Ok(w) => w,
            Err(e) => {
                eprintln!("fvs-vswitchd: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    match start(&opts, &mut ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Detached, the waiting parent prints it (once); else we do.
            if ready.is_some() {
                report(&mut ready, &e);
            } else {
                eprintln!("fvs-vswitchd: {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// Creates `dir` and its missing parents; returns the ones it created.
fn mkdirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("{}: cannot create directory ({e})", dir.display()))?;
    Ok(missing)
}

/// Hands what the daemon keeps using to `--user`'s USER, then becomes it:
/// the directories it created now and its own run/db/log directories (as
/// OVS's ovs-ctl does for --ovs-user), and the files it opened as root.
fn become_user(
    t: &privs::Target,
    opts: &Options,
    created: &[PathBuf],
    db_files: &[PathBuf],
) -> Result<(), String> {
    let own_dirs = [
        unixctl::rundir(),
        env_dir("FVS_DBDIR", "/etc/fvs"),
        env_dir("FVS_LOGDIR", "/var/log/fvs"),
    ];
    let mut paths: Vec<PathBuf> = created.to_vec();
    paths.extend(own_dirs.into_iter().filter(|d| d.is_dir()));
    paths.extend(db_files.iter().cloned());
    paths.extend(opts.log_file.iter().cloned());
    paths.extend(opts.pidfile.iter().cloned());
    for p in &paths {
        privs::chown(p, t)?;
    }
    privs::drop_to(t)
}

fn start(opts: &Options, ready: &mut Option<OwnedFd>) -> Result<(), String> {
    // Files and sockets made from here on give others no access (0750
    // sockets and directories, 0640 files).
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe { libc::umask(0o027) };
    let target = opts.user.as_deref().map(privs::resolve).transpose()?;
    // SAFETY: geteuid has no preconditions.
    if target.is_some() && unsafe { libc::geteuid() } != 0 {
        return Err("--user: only root can use --user option".into());
    }
    let mut created = Vec::new();
    for dir in [
        opts.unixctl.parent(),
        opts.pidfile.as_deref().and_then(|p| p.parent()),
        opts.log_file.as_deref().and_then(|p| p.parent()),
        opts.db.parent(),
    ]
    .into_iter()
    .flatten()
    {
        created.extend(mkdirs(dir)?);
    }
    let log = Arc::new(Vlog::new(opts.log_file.clone(), !opts.detach).map_err(|e| {
        format!(
            "{}: cannot open log file ({e})",
            opts.log_file.as_deref().unwrap_or("".as_ref()).display()
        )
    })?);
    if opts.verbose {
        let _ = log.set("ANY:dbg");
    }
    let db = Vswitchd::open_db(&opts.db)?;
    if let Some(note) = db.recovery_note() {
        log.warn("ovsdb", note);
    }
    if let Some(p) = &opts.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(t) = &target {
        // Before any thread exists: credentials and capabilities are per
        // thread, and every thread started later inherits these.
        become_user(t, opts, &created, &[opts.db.clone(), db.lock_path()])?;
        log.info(
            "vswitchd",
            &format!(
                "running as user {} (uid {}, gid {}), capabilities {}",
                t.user,
                t.uid,
                t.gid,
                privs::KEPT.map(|(_, n)| n).join(", ")
            ),
        );
    }
    install_signal(libc::SIGTERM, on_stop);
    install_signal(libc::SIGINT, on_stop);
    install_signal(libc::SIGHUP, on_hup);
    // SAFETY: ignoring SIGPIPE (a CLI that goes away mid-reply) is process-wide and memory-safe.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };

    let daemon = Daemon::new(log.clone())?;
    let vs = Vswitchd::new(daemon.clone(), db);
    let server = Server::new();
    vs.register(&server);
    let stop_server = Arc::new(AtomicBool::new(false));
    let serving = server
        .serve(&opts.unixctl, stop_server.clone())
        .map_err(|e| format!("{}: cannot listen ({e})", opts.unixctl.display()))?;
    log.info(
        "vswitchd",
        &format!(
            "{} started; database {}",
            appctl::VERSION,
            opts.db.display()
        ),
    );
    if ready.is_some() {
        report(ready, "ok");
        redirect_stdio_to_null();
    }
    vs.run(&STOP, &HUP);

    let cleanup = daemon.cleanup_on_exit.load(Ordering::Relaxed);
    log.info(
        "vswitchd",
        &format!("exiting{}", if cleanup { " (cleanup)" } else { "" }),
    );
    daemon.shutdown();
    stop_server.store(true, Ordering::Relaxed);
    let _ = serving.join();
    let _ = std::fs::remove_file(&opts.unixctl);
    if let Some(p) = &opts.pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
