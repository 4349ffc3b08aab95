//! Past one machine: cameras spread over the nodes of a cluster, with
//! NATS JetStream as the engine rather than a coordinator of vigil's own.
//!
//! The wanted cameras, the live nodes and who runs what live in JetStream
//! key-value [`buckets`]; each node works out from the same names which
//! cameras are its own ([`place`], weighted rendezvous hashing) and takes
//! them by lease, so no camera is analysed by two nodes at once and a dead
//! node's cameras are taken over once their leases run out.

pub mod agent;
pub mod buckets;
pub mod place;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

/// Where the other nodes reach this node's API: `[cluster] api` if given;
/// else the address it listens on; else, listening on every address, this
/// machine's address on its way to the first NATS server (the interface
/// the cluster's traffic takes: a pod's IP on Kubernetes).
pub fn advertised_api(config: &crate::config::ClusterConfig, listen: SocketAddr) -> String {
    if let Some(api) = &config.api {
        return api.trim_end_matches('/').to_string();
    }
    let ip = if listen.ip().is_unspecified() {
        toward_nats(&config.url).unwrap_or(listen.ip())
    } else {
        listen.ip()
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// This machine's address on its way to the first NATS server of `urls`
/// (a UDP socket "connected" there: nothing is sent).
fn toward_nats(urls: &str) -> Option<IpAddr> {
    let first = urls.split(',').map(str::trim).find(|u| !u.is_empty())?;
    let url = url::Url::parse(first).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server = (host, url.port().unwrap_or(4222))
        .to_socket_addrs()
        .ok()?
        .next()?;
    let any: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect(server).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// The base URL of a node's API as its heartbeat says it (`host:port`
/// from vigil before `[cluster] api`, a URL since).
pub fn api_url(api: &str) -> String {
    if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_says_where_others_reach_its_api() {
        let mut c = crate::config::ClusterConfig::on("nats://127.0.0.1:4222");
        let on = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(
            advertised_api(&c, on("10.1.2.3:9090")),
            "http://10.1.2.3:9090"
        );
        // Every address: the one toward NATS (here, loopback).
        assert_eq!(
            advertised_api(&c, on("0.0.0.0:9090")),
            "http://127.0.0.1:9090"
        );
        c.api = Some("http://vigil-0.vigil:9090/".into());
        assert_eq!(
            advertised_api(&c, on("0.0.0.0:9090")),
            "http://vigil-0.vigil:9090"
        );
        assert_eq!(api_url("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(api_url("https://b:1"), "https://b:1");
    }
}
