#![allow(dead_code)]

use bpfkit_isa::RawInsn;

pub fn kernel_object(name: &str) -> Vec<u8> {
    let path = format!("{}/../../bpf/kernel/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn test_object(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (slot index, first slot, second slot) of every LDDW.
pub fn lddws(insns: &[RawInsn]) -> Vec<(usize, RawInsn, RawInsn)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < insns.len() {
        if insns[i].code == 0x18 {
            out.push((i, insns[i], insns[i + 1]));
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

/// Map indices referenced through `BPF_PSEUDO_MAP_FD`, in program order.
pub fn map_fd_refs(insns: &[RawInsn]) -> Vec<i32> {
    lddws(insns)
        .into_iter()
        .filter(|(_, a, _)| a.src == 1)
        .map(|(_, a, b)| {
            assert_eq!(b.imm, 0, "second slot of a map fd LDDW");
            a.imm
        })
        .collect()
}
