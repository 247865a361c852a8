//! The control thread of a vhost-user port: the unix socket (listening as
//! the server, or connecting and reconnecting as the client), message
//! framing with file descriptors, and the loop that feeds the backend.
//!
//! Sockets are non-blocking and every wait is a `poll` that also watches
//! the port's stop eventfd, so a silent or half-sent frontend can never keep
//! a deleted port's thread alive.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::device::Shared;
use super::msg::{Header, HDR_SIZE, MAX_FDS, MAX_PAYLOAD};

/// Client reconnection back-off: first and longest wait.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where the port's socket is.
pub enum Endpoint {
    /// fvs listens (`dpdkvhostuser`).
    Server {
        listener: UnixListener,
        path: PathBuf,
    },
    /// fvs connects (`dpdkvhostuserclient`).
    Client { path: PathBuf },
}

/// The running control thread; stops it when dropped.
pub struct Control {
    stop: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Control {
    pub fn start(shared: Arc<Shared>, ep: Endpoint) -> io::Result<Control> {
        let stop = Arc::new(eventfd()?);
        let stop2 = stop.clone();
        let name = format!("vhost-{}", shared.name);
        let name: String = name.chars().take(15).collect();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(shared, ep, stop2.as_fd()))?;
        Ok(Control {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), one.as_ptr().cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds a listening socket at `path` (its directory is created; a stale
/// socket left by a previous run is replaced; any other file is not).
pub fn listen(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ))
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn run(shared: Arc<Shared>, ep: Endpoint, stop: BorrowedFd<'_>) {
    let mut delay = BACKOFF_MIN;
    loop {
        let sock = match &ep {
            Endpoint::Server { listener, .. } => match wait(&[listener.as_fd(), stop], None) {
                Some(0) => match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => continue,
                },
                _ => break,
            },
            Endpoint::Client { path } => match connect(path) {
                Ok(s) => s,
                Err(_) => {
                    if wait(&[stop], Some(delay)).is_some() {
                        break;
                    }
                    delay = (delay * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        if sock.set_nonblocking(true).is_err() {
            continue;
        }
        let since = Instant::now();
        {
            let mut info = shared.info();
            info.connected = true;
            info.connections += 1;
            info.error = None;
        }
        for c in &shared.vrings {
            c.fault.store(0, Ordering::Relaxed);
        }
        let mut backend = Backend::new(shared.clone());
        let stopped = serve(&shared, &sock, &mut backend, stop);
        backend.reset();
        shared.info().connected = false;
        drop(sock);
        if stopped {
            break;
        }
        if since.elapsed() >= BACKOFF_MAX {
            delay = BACKOFF_MIN;
        }
        if matches!(ep, Endpoint::Client { .. }) && wait(&[stop], Some(delay)).is_some() {
            break;
        }
    }
    if let Endpoint::Server { path, .. } = &ep {
        let _ = std::fs::remove_file(path);
    }
}

/// Serves one connection until it ends; returns whether the port is stopping.
fn serve(shared: &Shared, sock: &UnixStream, backend: &mut Backend, stop: BorrowedFd<'_>) -> bool {
    let mut payload = vec![0u8; MAX_PAYLOAD];
    loop {
        // A frontend that never pauses must not keep a deleted port alive.
        if wait(&[stop], Some(Duration::ZERO)).is_some() {
            return true;
        }
        let mut fds = Vec::new();
        let mut h = [0u8; HDR_SIZE];
        match read_full(sock, stop, &mut h, &mut fds) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(Stop::Stopped) => return true,
            Err(Stop::Failed(e)) => {
                shared.info().error = Some(format!("vhost-user socket: {e}"));
                return false;
            }
        }
        let hdr = match Header::parse(&h) {
            Ok(hdr) => hdr,
            Err(e) => {
                // The stream cannot be trusted any more: drop the connection.
                shared.info().error = Some(format!("{e}; connection closed"));
                return false;
            }
        };
        let size = hdr.size as usize;
        match read_full(sock, stop, &mut payload[..size], &mut fds) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(Stop::Stopped) => return true,
            Err(Stop::Failed(e)) => {
                shared.info().error = Some(format!("vhost-user socket: {e}"));
                return false;
            }
        }
        fds.truncate(MAX_FDS);
        let (reply, result) = backend.handle(&hdr, &payload[..size], fds);
        if let Err(e) = result {
            shared.info().error = Some(e);
        }
        if let Some(r) = reply {
            match write_full(sock, stop, r.as_bytes()) {
                Ok(()) => {}
                Err(Stop::Stopped) => return true,
                Err(Stop::Failed(_)) => return false,
            }
        }
    }
}

enum Stop {
    Stopped,
    Failed(io::Error),
}

/// Reads exactly `buf.len()` bytes, collecting passed descriptors into
/// `fds`. `Ok(false)`: the peer closed the connection (between messages or
/// in the middle of one: either way the connection is over).
fn read_full(
    sock: &UnixStream,
    stop: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<bool, Stop> {
    let mut got = 0;
    while got < buf.len() {
        match recv_fds(sock.as_fd(), &mut buf[got..], fds) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if wait(&[sock.as_fd(), stop], None) != Some(0) {
                    return Err(Stop::Stopped);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Stop::Failed(e)),
        }
    }
    Ok(true)
}

fn write_full(sock: &UnixStream, stop: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), Stop> {
    while !buf.is_empty() {
        // SAFETY: sends from a live buffer on our own socket; MSG_NOSIGNAL
        // turns a closed peer into EPIPE instead of a signal.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            buf = &buf[n as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => {
                if wait_out(sock.as_fd(), stop) {
                    return Err(Stop::Stopped);
                }
            }
            io::ErrorKind::Interrupted => {}
            _ => return Err(Stop::Failed(e)),
        }
    }
    Ok(())
}

/// Waits until one of `fds` is readable (or hung up); returns its index,
/// `None` on timeout or error.
fn wait(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Option<usize> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    loop {
        // SAFETY: polls our own array of pollfd for its length.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
        if r == 0 {
            return None;
        }
        return p.iter().position(|x| x.revents != 0);
    }
}

/// Waits until `sock` is writable; true if the stop eventfd fired instead.
fn wait_out(sock: BorrowedFd<'_>, stop: BorrowedFd<'_>) -> bool {
    let mut p = [
        libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: polls our own array of two pollfd.
    unsafe { libc::poll(p.as_mut_ptr(), 2, -1) };
    p[1].revents != 0
}

pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory arguments; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking connection to the unix socket at `path` (a full backlog
/// is an error to retry, never a wait).
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path is empty or too long",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket() has no memory arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: connects our socket to an address we built, of its own size.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UnixStream::from(fd))
}

/// Room for the ancillary data of up to 16 descriptors (more than any
/// message carries; extra ones are closed by the kernel on truncation).
const CMSG_WORDS: usize = 16;

/// One `recvmsg`: bytes into `buf`, passed descriptors appended to `fds`.
pub fn recv_fds(fd: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut cbuf = [0u64; CMSG_WORDS * 4 / 8 + 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: the iovec and control buffer are live for the call and their
    // lengths are those given.
    let n = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut mh,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walks the control messages the kernel wrote into cbuf with
    // the CMSG macros, which stay within msg_controllen; each SCM_RIGHTS
    // payload holds cmsg_len - CMSG_LEN(0) bytes of descriptors, now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    Ok(n as usize)
}

/// One `sendmsg` of `buf` with `fds` attached (blocking socket assumed; for
/// frontends: tests and tools).
pub fn send_fds(fd: BorrowedFd<'_>, buf: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let mut cbuf = [0u64; CMSG_WORDS * 4 / 8 + 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    let n_fds = fds.len().min(CMSG_WORDS);
    if n_fds > 0 {
        let space = (n_fds * std::mem::size_of::<RawFd>()) as u32;
        mh.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        mh.msg_controllen = unsafe { libc::CMSG_SPACE(space) } as _;
        // SAFETY: the control buffer is large enough for one header and
        // n_fds descriptors (CMSG_SPACE of them fits cbuf); CMSG_FIRSTHDR
        // is non-null because msg_controllen covers a header.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&mh);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(space) as _;
            let data = libc::CMSG_DATA(c).cast::<RawFd>();
            for (i, f) in fds.iter().take(n_fds).enumerate() {
                data.add(i).write_unaligned(f.as_raw_fd());
            }
        }
    }
    // SAFETY: the buffers are live for the call; MSG_NOSIGNAL avoids SIGPIPE.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
