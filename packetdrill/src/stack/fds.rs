//! Descriptors: where their numbers come from, and the socket behind one.

use super::{Errno, Fd, FdSource, File, Socket, Stack, SysResult};

impl Stack {
    pub(super) fn new_fd(&mut self) -> SysResult<Fd> {
        match self.fds {
            FdSource::Counter => {
                let fd = self.next_fd;
                self.next_fd += 1;
                Ok(fd)
            }
            FdSource::Eventfd => {
                // SAFETY: eventfd takes no pointers, only an initial value and flags; the
                // descriptor it returns is new and ours.
                let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
                if fd < 0 {
                    return Err(Errno(
                        std::io::Error::last_os_error()
                            .raw_os_error()
                            .unwrap_or(libc::EMFILE),
                    ));
                }
                Ok(fd)
            }
        }
    }

    pub(super) fn release_fd(&self, fd: Fd) {
        if self.fds == FdSource::Eventfd {
            // SAFETY: `fd` is an eventfd this stack created and still owned (it was in
            // `files` until now), so closing it closes nothing else.
            unsafe { libc::close(fd) };
        }
    }

    /// Closes every descriptor still open, without any TCP action (tests and fuzzing; under
    /// packetdrill the script's descriptors are closed by packetdrill itself).
    pub fn release_all(&mut self) {
        let fds: Vec<Fd> = self.files.keys().copied().collect();
        for fd in fds {
            self.files.remove(&fd);
            self.release_fd(fd);
        }
        self.epolls = 0;
    }

    pub(super) fn socket(&self, fd: Fd) -> SysResult<&Socket> {
        match self.files.get(&fd) {
            Some(File::Socket(s)) => Ok(s),
            Some(File::Epoll(_)) => Err(Errno(libc::ENOTSOCK)),
            None => Err(Errno::BADF),
        }
    }

    pub(super) fn sock(&mut self, fd: Fd) -> SysResult<&mut Socket> {
        match self.files.get_mut(&fd) {
            Some(File::Socket(s)) => Ok(s),
            Some(File::Epoll(_)) => Err(Errno(libc::ENOTSOCK)),
            None => Err(Errno::BADF),
        }
    }

    pub(super) fn socket_mut(&mut self, fd: Fd) -> Option<&mut Socket> {
        match self.files.get_mut(&fd) {
            Some(File::Socket(s)) => Some(s),
            _ => None,
        }
    }

    /// Would-block for this socket: `EAGAIN` if non-blocking, else wait.
    pub(super) fn would_block(&self, fd: Fd) -> Errno {
        match self.socket(fd) {
            Ok(s) if s.nonblocking => Errno::AGAIN,
            Ok(_) => Errno::BLOCK,
            Err(e) => e,
        }
    }
}
