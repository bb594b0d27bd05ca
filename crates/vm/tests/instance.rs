//! Objects in the VM under concurrency: programs running on several threads
//! while the host reads and writes the same maps.

use bpfkit_vm::maps::possible_cpus;
use bpfkit_vm::Instance;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn example(name: &str) -> Instance {
    let path = format!(
        "{}/../../bpf/examples/{name}.bpf.o",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    Instance::load(&bpfkit_object::parse(&bytes).unwrap()).unwrap()
}

/// An IPv4 UDP frame of `len` bytes (headers valid enough for the counter).
fn udp_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f
}

fn u64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn threads_run_programs_while_the_host_reads_maps() {
    const THREADS: usize = 4;
    const RUNS: usize = 2_000;
    let inst = Arc::new(example("xdp_proto_count"));
    let stop = Arc::new(AtomicBool::new(false));
    // The host reads both maps over and over while programs run.
    let reader = {
        let (inst, stop) = (inst.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut last = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(v) = inst
                    .map("proto_stats")
                    .unwrap()
                    .lookup(&17u32.to_ne_bytes())
                {
                    // Counters only grow.
                    let packets = u64s(&v)[0];
                    assert!(packets >= last, "{packets} < {last}");
                    last = packets;
                }
                inst.map("totals")
                    .unwrap()
                    .lookup(&0u32.to_ne_bytes())
                    .unwrap();
                reads += 1;
            }
            reads
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let inst = inst.clone();
            std::thread::spawn(move || {
                let frame = udp_frame(60 + t);
                for _ in 0..RUNS {
                    let r = inst.run_packet("count_protocols", &frame).unwrap();
                    assert_eq!(r.retval, 2, "XDP_PASS");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);

    // The hash counts with atomic adds: nothing lost.
    let udp = u64s(
        &inst
            .map("proto_stats")
            .unwrap()
            .lookup(&17u32.to_ne_bytes())
            .unwrap(),
    );
    let bytes: u64 = (0..THREADS).map(|t| ((60 + t) * RUNS) as u64).sum();
    assert_eq!(udp, vec![(THREADS * RUNS) as u64, bytes]);
    // The per-CPU array counts with plain adds: exact only because no two
    // runs share a CPU slot at once, as in the kernel.
    let totals = inst
        .map("totals")
        .unwrap()
        .lookup(&0u32.to_ne_bytes())
        .unwrap();
    assert_eq!(totals.len(), 16 * possible_cpus() as usize);
    let mut sum = [0u64; 2];
    for slot in totals.chunks(16) {
        let v = u64s(slot);
        sum[0] += v[0];
        sum[1] += v[1];
    }
    assert_eq!(sum, [(THREADS * RUNS) as u64, bytes]);
}

#[test]
fn host_updates_are_seen_by_the_next_run() {
    let inst = example("xdp_blocklist");
    let mut frame = udp_frame(60);
    frame[36..38].copy_from_slice(&53u16.to_be_bytes());
    assert_eq!(inst.run_packet("blocklist", &frame).unwrap().retval, 2);
    inst.map("blocked_ports")
        .unwrap()
        .update(&53u16.to_ne_bytes(), &0u64.to_ne_bytes(), 0)
        .unwrap();
    assert_eq!(inst.run_packet("blocklist", &frame).unwrap().retval, 1);
    inst.map("blocked_ports")
        .unwrap()
        .delete(&53u16.to_ne_bytes())
        .unwrap();
    assert_eq!(inst.run_packet("blocklist", &frame).unwrap().retval, 2);
}

#[test]
fn runs_are_refused_with_named_errors() {
    let inst = example("xdp_blocklist");
    let e = inst.run_packet("nope", &udp_frame(60)).unwrap_err();
    assert_eq!(e.to_string(), "no program `nope` in the object");
    let e = inst.run_packet("blocklist", &[0u8; 10]).unwrap_err();
    assert!(e.to_string().contains("a 10-byte packet is refused"), "{e}");
    let tc = example("tc_nat");
    let e = tc.run_packet("nat", &udp_frame(30)).unwrap_err();
    assert!(
        e.to_string()
            .contains("EtherType IPv4 without a whole IPv4 header"),
        "{e}"
    );
}

#[test]
fn a_program_array_holds_one_program_type() {
    let inst = example("xdp_tail_chain");
    inst.set_prog_array("jmp_table", 0, "xdp_stage_parse")
        .unwrap();
    let e = inst.set_prog_array("jmp_table", 1, "nope").unwrap_err();
    assert_eq!(e, "no program `nope` in the object");
    let e = inst
        .set_prog_array("stage_hits", 1, "xdp_stage_parse")
        .unwrap_err();
    assert_eq!(e, "map `stage_hits` is not a program array");
}

#[test]
fn a_program_of_another_type_is_refused_by_a_program_array() {
    let path = format!(
        "{}/../../bpf/examples/xdp_tail_chain.bpf.o",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut obj = bpfkit_object::parse(&std::fs::read(path).unwrap()).unwrap();
    // The same code, declared a tc program (its context reads are valid
    // __sk_buff reads too).
    let p = obj
        .programs
        .iter_mut()
        .find(|p| p.name == "xdp_self_loop")
        .unwrap();
    p.kind = bpfkit_object::ProgramKind::SchedCls;
    let inst = Instance::load(&obj).unwrap();
    // The array's owner is XDP: the programs using it are XDP programs.
    let e = inst
        .set_prog_array("jmp_table", 2, "xdp_self_loop")
        .unwrap_err();
    assert_eq!(
        e,
        "program `xdp_self_loop` is a SchedCls program; program array `jmp_table` holds Xdp programs"
    );
    inst.set_prog_array("jmp_table", 0, "xdp_stage_parse")
        .unwrap();
}
