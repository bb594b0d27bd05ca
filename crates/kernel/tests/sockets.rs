//! Socket programs over TCP and UDP on loopback: sockmap splicing with
//! SK_SKB parser + verdict, SK_MSG redirect on a sockhash, a socket filter,
//! and cgroup_skb counters. Root only: skipped with a reason otherwise, a
//! failure under CI=true.

mod common;
use bpfkit_kernel::object::{Attach, KernelObject, ObjectLoader};
use common::{available, object, u64_at};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

/// A connected pair on loopback: (client, server side).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    for t in [&c, &s] {
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        t.set_nodelay(true).unwrap();
    }
    (c, s)
}

fn put(obj: &KernelObject, map: &str, key: &[u8], value: &[u8]) {
    obj.map(map).unwrap().update(key, value, 0).unwrap();
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn sockmap_splices_two_tcp_connections_both_ways() {
    if !available(false) {
        return;
    }
    let mut obj = ObjectLoader::open(&object("sockmap_redirect.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    obj.attach("parse_all", Attach::SkSkb { map: "sock_pair" })
        .unwrap();
    obj.attach("redirect_to_peer", Attach::SkSkb { map: "sock_pair" })
        .unwrap();
    // c1 <-> s1 and c2 <-> s2; s1 and s2 are spliced: what c1 sends arrives
    // at s1, is redirected out of s2, and c2 reads it (and back).
    let (mut c1, s1) = tcp_pair();
    let (mut c2, s2) = tcp_pair();
    for (idx, s) in [(0u32, &s1), (1u32, &s2)] {
        let port = s.local_addr().unwrap().port() as u32;
        put(&obj, "port_index", &port.to_ne_bytes(), &idx.to_ne_bytes());
        put(
            &obj,
            "sock_pair",
            &idx.to_ne_bytes(),
            &(s.as_raw_fd() as u32).to_ne_bytes(),
        );
    }
    let forward = payload(256 * 1024, 1);
    let back = payload(64 * 1024, 7);
    let writer = {
        let mut c1 = c1.try_clone().unwrap();
        let forward = forward.clone();
        std::thread::spawn(move || {
            for chunk in forward.chunks(1000) {
                c1.write_all(chunk).unwrap();
            }
        })
    };
    let mut got = vec![0u8; forward.len()];
    c2.read_exact(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == forward, "forward payload corrupted or reordered");
    c2.write_all(&back).unwrap();
    let mut got = vec![0u8; back.len()];
    c1.read_exact(&mut got).unwrap();
    assert!(got == back, "return payload corrupted or reordered");
    let bss = obj.map(".bss").unwrap();
    let v = bss.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(
        u64_at(&v, 0),
        (forward.len() + back.len()) as u64,
        "redirected bytes"
    );
    drop((s1, s2));
}

#[test]
fn sk_msg_redirects_sendmsg_into_another_socket() {
    if !available(false) {
        return;
    }
    let mut obj = ObjectLoader::open(&object("sockmap_redirect.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    obj.attach(
        "redirect_msg",
        Attach::SkMsg {
            map: "sock_by_port",
        },
    )
    .unwrap();
    let (mut c3, mut s3) = tcp_pair();
    let (mut c4, _s4) = tcp_pair();
    let p3 = c3.local_addr().unwrap().port() as u32;
    let p4 = c4.local_addr().unwrap().port() as u32;
    put(
        &obj,
        "sock_by_port",
        &p3.to_ne_bytes(),
        &(c3.as_raw_fd() as u32).to_ne_bytes(),
    );
    put(
        &obj,
        "sock_by_port",
        &p4.to_ne_bytes(),
        &(c4.as_raw_fd() as u32).to_ne_bytes(),
    );
    put(&obj, "msg_route", &p3.to_ne_bytes(), &p4.to_ne_bytes());
    let msgs: Vec<Vec<u8>> = (0..20).map(|i| payload(100 + i * 37, i as u8)).collect();
    for m in &msgs {
        c3.write_all(m).unwrap();
    }
    let want: Vec<u8> = msgs.concat();
    let mut got = vec![0u8; want.len()];
    c4.read_exact(&mut got).unwrap();
    assert!(got == want, "messages corrupted or reordered");
    // Nothing reached c3's own peer.
    s3.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 16];
    assert!(
        s3.read(&mut b).is_err(),
        "s3 received data that was redirected"
    );
    let bss = obj.map(".bss").unwrap();
    let v = bss.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64_at(&v, 1), msgs.len() as u64, "redirected messages");
}

#[test]
fn socket_filter_keeps_only_matching_datagrams() {
    if !available(false) {
        return;
    }
    let mut obj = ObjectLoader::open(&object("socket_filter.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    obj.attach("keep_k", Attach::SocketFilter { socket: rx.as_fd() })
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for m in ["Keep 1", "drop 1", "Keep 2", "xx", "Keep 3"] {
        tx.send_to(m.as_bytes(), rx.local_addr().unwrap()).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while let Ok(n) = rx.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got, ["Keep 1", "Keep 2", "Keep 3"]);
    let bss = obj.map(".bss").unwrap();
    let v = bss.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!((u64_at(&v, 0), u64_at(&v, 1)), (5, 3), "seen, kept");
}

/// The cgroup v2 mount point, from /proc/mounts.
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "cgroup2")
        .map(|f| PathBuf::from(f[1]))
}

#[test]
fn cgroup_skb_counts_a_cgroups_traffic() {
    if !available(false) {
        return;
    }
    let Some(root) = cgroup2_root() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kernel test skipped: no cgroup2 mount in /proc/mounts");
        }
        eprintln!("kernel test skipped: no cgroup2 mount in /proc/mounts");
        return;
    };
    let cg = root.join(format!("bpfkit-test-{}", std::process::id()));
    std::fs::create_dir_all(&cg).unwrap();
    let mut obj = ObjectLoader::open(&object("cgroup_count.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    obj.attach(
        "count_egress",
        Attach::CgroupSkb {
            cgroup: &cg,
            egress: true,
        },
    )
    .unwrap();
    obj.attach(
        "count_ingress",
        Attach::CgroupSkb {
            cgroup: &cg,
            egress: false,
        },
    )
    .unwrap();
    // A child joins the cgroup, then pings loopback three times.
    let mut child = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            "read x; exec ping -q -c 3 -i 0.05 -W 2 127.0.0.1 >/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(cg.join("cgroup.procs"), child.id().to_string()).unwrap();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    assert!(child.wait().unwrap().success());
    let bss = obj.map(".bss").unwrap();
    let v = bss.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    let (eg_pkts, eg_bytes, in_pkts, in_bytes) =
        (u64_at(&v, 0), u64_at(&v, 1), u64_at(&v, 2), u64_at(&v, 3));
    drop(obj);
    let _ = std::fs::remove_dir(&cg);
    assert!(eg_pkts >= 3, "egress packets {eg_pkts}");
    assert!(in_pkts >= 3, "ingress packets {in_pkts}");
    // Each ICMP echo is at least 28 bytes of IP + ICMP header.
    assert!(eg_bytes >= 28 * eg_pkts && in_bytes >= 28 * in_pkts);
}
