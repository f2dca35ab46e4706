//! The socket to the server: TCP or a Unix-domain socket, as the connection parameters say.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::Target;

pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub(super) fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }
    pub(super) fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }
    pub(super) fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
    pub(super) fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf),
            Stream::Unix(s) => s.write_all(buf),
        }
    }
}

pub(super) fn open(target: &Target) -> Result<Stream, String> {
    match target {
        Target::Tcp(addr) => {
            let s = TcpStream::connect(addr).map_err(|e| format!("cannot connect to PostgreSQL at {addr}: {e}; is the server up (`cargo xtask db up`)?"))?;
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
        Target::Unix(path) => UnixStream::connect(path)
            .map(Stream::Unix)
            .map_err(|e| format!("cannot connect to PostgreSQL at {path}: {e}")),
    }
}
