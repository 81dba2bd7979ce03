//! systemd's readiness notification (`sd_notify(3)`), for units with `Type=notify`.
//!
//! `units/kube-apiserver.service` is `Type=notify`: systemd considers the unit started only when the main process
//! sends `READY=1` to the datagram socket named by `$NOTIFY_SOCKET`, and fails it after `TimeoutStartSec=`
//! otherwise. The stand-in kube-apiserver sends it once it listens. Paths (`/run/systemd/notify`) and abstract
//! names (`@...`) are supported; with no `$NOTIFY_SOCKET` (not run by systemd) nothing is sent.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Sends `message` (e.g. `"READY=1\nSTATUS=..."`) to `$NOTIFY_SOCKET`. `Ok(false)`: the variable is unset.
pub fn notify(message: &str) -> Result<bool, String> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    send(socket.as_bytes(), message)?;
    Ok(true)
}

fn send(socket: &[u8], message: &str) -> Result<(), String> {
    let shown = String::from_utf8_lossy(socket);
    let fail =
        |e: std::io::Error| format!("cannot notify systemd through NOTIFY_SOCKET={shown}: {e}");
    let sender = UnixDatagram::unbound().map_err(fail)?;
    if let Some(name) = socket.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name).map_err(fail)?;
            sender
                .send_to_addr(message.as_bytes(), &address)
                .map_err(fail)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(format!(
                "NOTIFY_SOCKET={shown}: abstract sockets exist only on Linux"
            ));
        }
    }
    if !socket.starts_with(b"/") {
        return Err(format!(
            "NOTIFY_SOCKET={shown} is neither a path nor an abstract socket name (@...); not notifying"
        ));
    }
    sender
        .send_to(message.as_bytes(), std::ffi::OsStr::from_bytes(socket))
        .map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str().as_bytes(), "READY=1\nSTATUS=serving").unwrap();
        let mut buffer = [0u8; 256];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=serving");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("k8s-standin-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        send(format!("@{name}").as_bytes(), "READY=1").unwrap();
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");
    }

    #[test]
    fn other_socket_names_are_errors() {
        let err = send(b"vsock:2:1234", "READY=1").unwrap_err();
        assert!(err.contains("NOTIFY_SOCKET=vsock:2:1234"), "{err}");
        let err = send(b"/nonexistent/k8s-standin/notify", "READY=1").unwrap_err();
        assert!(err.contains("cannot notify systemd"), "{err}");
    }
}
