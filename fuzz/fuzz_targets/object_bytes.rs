//! Arbitrary bytes as a clang-built object: parsing fails with a typed error
//! or gives an object that loads into the VM or fails with a typed error;
//! every program that loads runs on a packet (or memory) to Ok or a typed
//! error. Seeds: the committed objects in bpf/ (`-seed_inputs` or a corpus
//! directory holding copies), which mutations then take apart.

#![no_main]

use bpfkit_vm::Instance;
use libfuzzer_sys::fuzz_target;

/// A 60-byte IPv4/UDP frame: enough for every example's parser to go deep.
fn packet() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    f
}

fuzz_target!(|data: &[u8]| {
    let Ok(object) = bpfkit_object::parse(data) else {
        return;
    };
    let Ok(inst) = Instance::load(&object) else {
        return;
    };
    let names: Vec<String> = inst.programs().iter().map(|p| p.name.clone()).collect();
    for name in names {
        if inst.run_packet(&name, &packet()).is_err() {
            let mut mem = vec![0u8; 128];
            let _ = inst.run_memory(&name, &mut mem);
        }
    }
});
