//! XDP and tc programs on a veth pair between two network namespaces this
//! test creates (and deletes), with traffic only between them. Root only:
//! skipped with a reason otherwise, a failure under CI=true.

mod common;
use bpfkit_kernel::object::{Attach, ObjectLoader, XdpMode};
use common::{available, object, u64_at};
use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair: `a` (10.201.N.1) and `b`
/// (10.201.N.2). Deleted on drop.
struct Pair {
    a: String,
    b: String,
    a_if: String,
    b_if: String,
    a_ip: String,
    b_ip: String,
}

impl Pair {
    fn new() -> Pair {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id() % 100000);
        let p = Pair {
            a: format!("bpfkit-a-{tag}"),
            b: format!("bpfkit-b-{tag}"),
            a_if: format!("bka{}", n),
            b_if: format!("bkb{}", n),
            a_ip: format!("10.201.{n}.1"),
            b_ip: format!("10.201.{n}.2"),
        };
        run(&["ip", "netns", "add", &p.a]);
        run(&["ip", "netns", "add", &p.b]);
        run(&[
            "ip", "link", "add", &p.a_if, "netns", &p.a, "type", "veth", "peer", "name", &p.b_if,
            "netns", &p.b,
        ]);
        for (ns, ifname, ip) in [(&p.a, &p.a_if, &p.a_ip), (&p.b, &p.b_if, &p.b_ip)] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                ifname,
            ]);
            run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        p
    }

    /// Runs `f` on a thread that has entered namespace `ns`.
    fn in_ns<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
                use std::os::fd::AsRawFd;
                // SAFETY: setns on this thread only, with a valid netns fd.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        })
    }

    fn ping_from_a(&self, count: u32) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.a,
            "ping",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "2",
            &self.b_ip,
        ]);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

fn xdp_counts_pings(mode: XdpMode) {
    if !available(false) {
        return;
    }
    let pair = Pair::new();
    let mut obj = ObjectLoader::open(&object("xdp_count.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    pair.in_ns(&pair.b, || {
        obj.attach(
            "count_packets",
            Attach::Xdp {
                interface: &pair.b_if,
                mode,
            },
        )
    })
    .unwrap();
    pair.ping_from_a(5);
    let echo = obj.map("echo_requests").unwrap();
    let v = echo.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64_at(&v, 0), 5, "echo requests seen by XDP ({mode:?})");
    // ICMP (protocol 1) packets, summed over CPUs: the 5 requests at least.
    let per_proto = obj.map("proto_packets").unwrap();
    let v = per_proto.lookup(&1u32.to_ne_bytes()).unwrap().unwrap();
    let icmp: u64 = v
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .sum();
    assert_eq!(icmp, 5, "ICMP packets ({mode:?})");
}

#[test]
fn xdp_driver_mode_counts_pings() {
    xdp_counts_pings(XdpMode::Driver);
}

#[test]
fn xdp_generic_mode_counts_pings() {
    xdp_counts_pings(XdpMode::Generic);
}

#[test]
fn tc_drops_rewrites_and_passes_udp() {
    if !available(false) {
        return;
    }
    let pair = Pair::new();
    let mut obj = ObjectLoader::open(&object("tc_rewrite.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    pair.in_ns(&pair.b, || {
        obj.attach(
            "rewrite_udp",
            Attach::Tc {
                interface: &pair.b_if,
                ingress: true,
            },
        )
    })
    .unwrap();
    let b_ip = pair.b_ip.clone();
    // Receivers in b on the rewritten-to port, the dropped port and a plain one.
    let receivers: Vec<UdpSocket> = pair.in_ns(&pair.b, || {
        [8888u16, 9999, 5555]
            .iter()
            .map(|port| {
                let s = UdpSocket::bind((b_ip.as_str(), *port)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                s
            })
            .collect()
    });
    pair.in_ns(&pair.a, || {
        let s = UdpSocket::bind((pair.a_ip.as_str(), 0)).unwrap();
        for (port, payload) in [(7777u16, "to-7777"), (9999, "to-9999"), (5555, "to-5555")] {
            for _ in 0..3 {
                s.send_to(payload.as_bytes(), (b_ip.as_str(), port))
                    .unwrap();
            }
        }
    });
    let drain = |s: &UdpSocket| {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = s.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    };
    assert_eq!(
        drain(&receivers[0]),
        vec!["to-7777"; 3],
        "rewritten to 8888"
    );
    assert!(drain(&receivers[1]).is_empty(), "9999 must be dropped");
    assert_eq!(drain(&receivers[2]), vec!["to-5555"; 3], "passed unchanged");
    let bss = obj.map(".bss").unwrap();
    let v = bss.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!((u64_at(&v, 0), u64_at(&v, 1)), (3, 3), "dropped, rewritten");
    assert!(u64_at(&v, 2) >= 3, "passed");
}
