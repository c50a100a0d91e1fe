//! Mounting as a user who is not root, through the setuid `fusermount3`
//! (or `fusermount`) helper, as libfuse does: the helper opens /dev/fuse,
//! mounts it, and passes the open device back over a Unix socket.
//!
//! fuser does this too, but only after opening /dev/fuse itself, and a
//! device that only root may open (mode 0600, as in many containers and
//! VMs) then stops it with EACCES although the helper would succeed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

/// The open FUSE device of a new mount at `mountpoint` with mount
/// options `options` (as `-o` takes them), made by `helper`.
pub fn mount(helper: &Path, mountpoint: &Path, options: &str) -> io::Result<OwnedFd> {
    let (ours, theirs) = UnixStream::pair()?;
    // The helper finds its end by number in _FUSE_COMMFD, so that end
    // must survive exec: a duplicate without close-on-exec.
    // SAFETY: dup of a valid descriptor; the result is owned below.
    let raw = unsafe { libc::dup(theirs.as_raw_fd()) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let inherited = unsafe { OwnedFd::from_raw_fd(raw) };
    let child = Command::new(helper)
        .arg("-o")
        .arg(options)
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", raw.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    // Only the helper may hold its end now, or a helper that fails would
    // leave the socket open and the receive below waiting forever.
    drop(inherited);
    drop(theirs);
    let child = child?;
    let received = receive_fd(&ours);
    let out = child.wait_with_output()?;
    match received {
        Ok(fd) if out.status.success() => Ok(fd),
        _ => {
            let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(io::Error::other(if said.is_empty() {
                format!("{} exited with {}", helper.display(), out.status)
            } else {
                said
            }))
        }
    }
}

/// Receives one descriptor sent with SCM_RIGHTS.
fn receive_fd(sock: &UnixStream) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one control message carrying one int, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: a valid socket and a msghdr describing live buffers.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the helper sent no device",
        ));
    }
    // SAFETY: the kernel filled `control`; CMSG_* walk it within bounds.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other("the helper's message holds no descriptor"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
        Ok(OwnedFd::from_raw_fd(fd))
    }
}
