//! Arbitrary UTF-8 through both dialects' assembler: no panic; text that
//! assembles disassembles, and the disassembly reassembles to the same
//! bytes, in its own dialect and in the other one.

#![no_main]

use bpfkit_isa::asm::assemble;
use bpfkit_isa::disasm::disassemble;
use bpfkit_isa::Dialect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for dialect in [Dialect::Conformance, Dialect::Llvm] {
        let Ok(slots) = assemble(text, dialect) else {
            continue;
        };
        for out in [Dialect::Conformance, Dialect::Llvm] {
            let listing = disassemble(&slots, out).unwrap_or_else(|e| {
                panic!("assembled ({dialect:?}) but does not decode: {e}\n{slots:?}")
            });
            let again = assemble(&listing, out).unwrap_or_else(|e| {
                panic!("disassembly ({out:?}) does not reassemble: {e}\n{listing}")
            });
            assert_eq!(
                slots, again,
                "{dialect:?} -> {out:?} round trip changed the bytes\n{listing}"
            );
        }
    }
});
