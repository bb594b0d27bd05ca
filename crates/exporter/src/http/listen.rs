//! `--web.listen-address`, as ebpf_exporter reads it: Go's
//! `net.Listen("tcp", addr)` addresses, or `fd://N` for socket activation.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, RawFd};
use std::str::FromStr;

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `HOST:PORT`, `[V6]:PORT`, or `:PORT` (no host: every interface,
    /// IPv6 and IPv4).
    Tcp { host: Option<String>, port: u16 },
    /// `fd://N`: the N-th socket passed by socket activation, as
    /// go-systemd's `activation.Listeners()` (which ebpf_exporter uses)
    /// finds them: with `LISTEN_PID` (when set) naming this process and
    /// `LISTEN_FDS` counting them, socket N is fd 3 + N. Without
    /// `LISTEN_FDS`, fd N itself when it is a listening TCP socket (inetd
    /// style, e.g. systemd's `StandardInput=socket`: `fd://0`).
    Fd(u32),
}

/// Why a listen address is not valid, or could not be listened on.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("listen address {0:?}: missing port (expected HOST:PORT, :PORT, [V6]:PORT or fd://N)")]
    MissingPort(String),
    #[error("listen address {addr:?}: port {port:?} is not a number from 0 to 65535")]
    BadPort { addr: String, port: String },
    #[error("listen address {0:?}: an IPv6 address must be in brackets, as [V6]:PORT")]
    TooManyColons(String),
    #[error("listen address {0:?}: {1:?} is not an IPv6 address")]
    BadIpv6(String, String),
    #[error("listen address {addr:?}: {fd:?} is not a file descriptor number")]
    BadFd { addr: String, fd: String },
    #[error("listen address {addr}: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// `fd://N` with fewer activation sockets than N + 1.
    #[error("fd://{index}: no listeners passed via activation ({reason})")]
    NoActivation { index: u32, reason: String },
    /// `fd://N`'s socket is not a listening TCP socket.
    #[error("fd://{index}: fd {fd} {reason}")]
    NotListening {
        index: u32,
        fd: RawFd,
        reason: String,
    },
}

impl FromStr for Listen {
    type Err = ListenError;

    fn from_str(addr: &str) -> Result<Listen, ListenError> {
        if let Some(fd) = addr.strip_prefix("fd://") {
            return match fd.parse::<u32>() {
                Ok(n) if fd.bytes().all(|b| b.is_ascii_digit()) => Ok(Listen::Fd(n)),
                _ => Err(ListenError::BadFd {
                    addr: addr.to_string(),
                    fd: fd.to_string(),
                }),
            };
        }
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Err(ListenError::MissingPort(addr.to_string()));
        };
        let port = match port.parse::<u16>() {
            Ok(p) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => {
                return Err(ListenError::BadPort {
                    addr: addr.to_string(),
                    port: port.to_string(),
                })
            }
        };
        let host = if let Some(inner) = host.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return Err(ListenError::BadIpv6(addr.to_string(), host.to_string()));
            };
            // A zone (`fe80::1%eth0`) is not supported.
            if inner.parse::<Ipv6Addr>().is_err() {
                return Err(ListenError::BadIpv6(addr.to_string(), inner.to_string()));
            }
            Some(inner.to_string())
        } else if host.contains(':') {
            return Err(ListenError::TooManyColons(addr.to_string()));
        } else if host.is_empty() {
            None
        } else {
            Some(host.to_string())
        };
        Ok(Listen::Tcp { host, port })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp { host: None, port } => write!(f, ":{port}"),
            Listen::Tcp {
                host: Some(h),
                port,
            } if h.contains(':') => write!(f, "[{h}]:{port}"),
            Listen::Tcp {
                host: Some(h),
                port,
            } => write!(f, "{h}:{port}"),
            Listen::Fd(n) => write!(f, "fd://{n}"),
        }
    }
}

/// A bound, listening socket.
#[derive(Debug)]
pub struct Listener {
    inner: tokio::net::TcpListener,
}

impl Listener {
    /// The address bound (the port chosen, when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    pub(crate) fn into_tokio(self) -> tokio::net::TcpListener {
        self.inner
    }
}

/// Listens on `listen`; call from within a tokio runtime.
pub async fn bind(listen: &Listen) -> Result<Listener, ListenError> {
    match listen {
        Listen::Tcp { host: None, port } => {
            // Go listens on [::] (dual stack); without IPv6, on 0.0.0.0.
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), *port);
            match tokio::net::TcpListener::bind(v6).await {
                Ok(inner) => Ok(Listener { inner }),
                Err(e) if is_no_ipv6(&e) => {
                    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port);
                    tcp(v4, listen).await
                }
                Err(source) => Err(ListenError::Bind {
                    addr: listen.to_string(),
                    source,
                }),
            }
        }
        Listen::Tcp {
            host: Some(host),
            port,
        } => {
            let addrs = resolve(host, *port, listen)?;
            let mut last = None;
            for addr in addrs {
                match tcp(addr, listen).await {
                    Ok(l) => return Ok(l),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| ListenError::Resolve {
                addr: listen.to_string(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses found"),
            }))
        }
        Listen::Fd(index) => {
            let fd = activation_fd(
                *index,
                std::env::var("LISTEN_PID").ok().as_deref(),
                std::env::var("LISTEN_FDS").ok().as_deref(),
                std::process::id(),
            )?;
            from_fd(*index, fd)
        }
    }
}

fn is_no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT)
    )
}

fn resolve(host: &str, port: u16, listen: &Listen) -> Result<Vec<SocketAddr>, ListenError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| ListenError::Resolve {
            addr: listen.to_string(),
            source,
        })?
        .collect();
    // Go prefers IPv4 for a name that resolves to both.
    addrs.sort_by_key(|a| !a.is_ipv4());
    Ok(addrs)
}

async fn tcp(addr: SocketAddr, listen: &Listen) -> Result<Listener, ListenError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map(|inner| Listener { inner })
        .map_err(|source| ListenError::Bind {
            addr: listen.to_string(),
            source,
        })
}

/// The fd of activation socket `index` (go-systemd's semantics), or fd
/// `index` itself when `LISTEN_FDS` is not set.
pub(crate) fn activation_fd(
    index: u32,
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    pid: u32,
) -> Result<RawFd, ListenError> {
    let Some(fds) = listen_fds else {
        return RawFd::try_from(index).map_err(|_| ListenError::NoActivation {
            index,
            reason: "fd number out of range".to_string(),
        });
    };
    if let Some(p) = listen_pid {
        if p.trim().parse::<u32>().ok() != Some(pid) {
            return Err(ListenError::NoActivation {
                index,
                reason: format!("LISTEN_PID={p} is not this process ({pid})"),
            });
        }
    }
    let count: u32 = fds.trim().parse().map_err(|_| ListenError::NoActivation {
        index,
        reason: format!("LISTEN_FDS={fds:?} is not a number"),
    })?;
    if index >= count {
        return Err(ListenError::NoActivation {
            index,
            reason: format!("LISTEN_FDS={count}"),
        });
    }
    RawFd::try_from(3 + u64::from(index)).map_err(|_| ListenError::NoActivation {
        index,
        reason: "fd number out of range".to_string(),
    })
}

fn sockopt(fd: RawFd, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for an int-sized option.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of `fd` once it is known to be a listening TCP socket.
fn from_fd(index: u32, fd: RawFd) -> Result<Listener, ListenError> {
    let not = |reason: String| ListenError::NotListening { index, fd, reason };
    let domain = sockopt(fd, libc::SO_DOMAIN).map_err(|e| not(format!("is not a socket: {e}")))?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(not(format!(
            "is not a TCP socket (address family {domain})"
        )));
    }
    let kind = sockopt(fd, libc::SO_TYPE).map_err(|e| not(e.to_string()))?;
    if kind != libc::SOCK_STREAM {
        return Err(not("is not a stream socket".to_string()));
    }
    if sockopt(fd, libc::SO_ACCEPTCONN).map_err(|e| not(e.to_string()))? == 0 {
        return Err(not("is not listening".to_string()));
    }
    // SAFETY: fd is an open listening TCP socket handed to this process
    // for the purpose; nothing else in the process owns it.
    let std = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    // SAFETY: setting FD_CLOEXEC on an fd we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    std.set_nonblocking(true).map_err(|e| not(e.to_string()))?;
    let inner = tokio::net::TcpListener::from_std(std).map_err(|e| not(e.to_string()))?;
    Ok(Listener { inner })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_fds() {
        assert_eq!(activation_fd(0, Some("42"), Some("1"), 42).ok(), Some(3));
        assert_eq!(activation_fd(1, None, Some("2"), 42).ok(), Some(4));
        assert!(matches!(
            activation_fd(1, Some("42"), Some("1"), 42),
            Err(ListenError::NoActivation { .. })
        ));
        assert!(matches!(
            activation_fd(0, Some("41"), Some("1"), 42),
            Err(ListenError::NoActivation { .. })
        ));
        assert!(matches!(
            activation_fd(0, None, Some("x"), 42),
            Err(ListenError::NoActivation { .. })
        ));
        assert_eq!(activation_fd(0, None, None, 42).ok(), Some(0));
    }
}
