//! Inputs that must fail cleanly: never a panic, always a named error.

mod common;

use bpfkit_object::{parse, ObjectError};
use common::test_object;

/// `parse` turns a panic inside aya-obj into this message; the checks before
/// it are meant to make that unreachable.
fn no_caught_panic(r: &Result<bpfkit_object::ObjectFile, ObjectError>) {
    if let Err(ObjectError::Elf { message }) = r {
        assert!(!message.starts_with("inconsistent object"), "{message}");
    }
}

fn elf_message(r: Result<bpfkit_object::ObjectFile, ObjectError>) -> String {
    match r {
        Err(ObjectError::Elf { message }) => message,
        other => panic!("expected an ELF error, got {other:?}"),
    }
}

/// A deterministic byte stream (xorshift).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize
}

/// Byte offset of the header of the section named `name`.
fn section_header(b: &[u8], name: &str) -> usize {
    let shoff = u64_at(b, 0x28) as usize;
    let (entsize, num, strndx) = (u16_at(b, 0x3a), u16_at(b, 0x3c), u16_at(b, 0x3e));
    let str_hdr = shoff + strndx * entsize;
    let strtab = u64_at(b, str_hdr + 0x18) as usize;
    (0..num)
        .map(|i| shoff + i * entsize)
        .find(|&h| {
            let off = strtab + u32::from_le_bytes(b[h..h + 4].try_into().unwrap()) as usize;
            b[off..].starts_with(name.as_bytes()) && b[off + name.len()] == 0
        })
        .unwrap_or_else(|| panic!("no section {name}"))
}

#[test]
fn empty_input() {
    let m = elf_message(parse(&[]));
    assert!(m.contains("not an ELF"), "{m}");
}

#[test]
fn random_bytes() {
    for seed in 1..200u64 {
        let bytes = noise(seed, (seed as usize * 37) % 5000);
        assert!(
            matches!(parse(&bytes), Err(ObjectError::Elf { .. })),
            "seed {seed}"
        );
    }
}

#[test]
fn elf_magic_then_noise() {
    for seed in 1..200u64 {
        let mut bytes = noise(seed, 4096);
        bytes[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        assert!(parse(&bytes).is_err(), "seed {seed}");
    }
}

#[test]
fn not_a_bpf_object() {
    let mut bytes = test_object("linking.o");
    bytes[0x12] = 62; // e_machine = EM_X86_64
    let m = elf_message(parse(&bytes));
    assert!(m.contains("not a BPF object"), "{m}");
}

#[test]
fn every_truncation_fails() {
    for name in ["missing_func.o", "linking.o"] {
        let bytes = test_object(name);
        parse(&bytes)
            .map(|_| ())
            .or_else(|e| match e {
                ObjectError::MissingSymbol { .. } => Ok(()),
                e => Err(e),
            })
            .unwrap();
        for len in 0..bytes.len() {
            let r = parse(&bytes[..len]);
            no_caught_panic(&r);
            assert!(r.is_err(), "{name} cut to {len} bytes parsed");
        }
    }
}

#[test]
fn section_header_out_of_file() {
    let mut bytes = test_object("linking.o");
    let h = section_header(&bytes, "tc");
    let len = bytes.len() as u64;
    bytes[h + 0x18..h + 0x20].copy_from_slice(&(len - 4).to_le_bytes()); // sh_offset
    let m = elf_message(parse(&bytes));
    assert!(!m.is_empty());
}

#[test]
fn section_header_table_past_end() {
    let mut bytes = test_object("linking.o");
    let len = bytes.len() as u64;
    bytes[0x28..0x30].copy_from_slice(&(len - 16).to_le_bytes()); // e_shoff
    elf_message(parse(&bytes));
}

#[test]
fn huge_bss_is_refused() {
    let mut bytes = test_object("globals.o");
    let h = section_header(&bytes, ".bss");
    bytes[h + 0x20..h + 0x28].copy_from_slice(&(1u64 << 40).to_le_bytes()); // sh_size
    let m = elf_message(parse(&bytes));
    assert!(m.contains(".bss"), "{m}");
}

#[test]
fn program_section_size_lies() {
    // Shrink `tc` so tc_main's symbol runs past its end.
    let mut bytes = test_object("linking.o");
    let h = section_header(&bytes, "tc");
    bytes[h + 0x20..h + 0x28].copy_from_slice(&16u64.to_le_bytes());
    let m = elf_message(parse(&bytes));
    assert!(m.contains("tc_main"), "{m}");
}

#[test]
fn corrupted_btf_is_an_error() {
    let mut bytes = test_object("globals.o");
    let h = section_header(&bytes, ".BTF");
    let off = u64_at(&bytes, h + 0x18) as usize;
    bytes[off + 16..off + 20].copy_from_slice(&u32::MAX.to_le_bytes()); // str_off
    assert!(matches!(parse(&bytes), Err(ObjectError::Btf { .. })));
}

#[test]
fn every_header_byte_flipped() {
    // Flip each byte of the ELF header and of every section header: any
    // result is fine, but no panic.
    let bytes = test_object("linking.o");
    let shoff = u64_at(&bytes, 0x28) as usize;
    let end = shoff + u16_at(&bytes, 0x3a) * u16_at(&bytes, 0x3c);
    for at in (0..0x40).chain(shoff..end) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[at] ^= flip;
            no_caught_panic(&parse(&b));
        }
    }
}

#[test]
fn unknown_section_is_named() {
    let e = parse(&test_object("bogus_section.o")).unwrap_err();
    assert_eq!(
        e,
        ObjectError::UnknownSection {
            section: "bogus/thing".into()
        }
    );
    assert!(e.to_string().contains("bogus/thing"));
}

#[test]
fn missing_extern_map() {
    let e = parse(&test_object("missing_map.o")).unwrap_err();
    assert_eq!(
        e,
        ObjectError::MissingSymbol {
            program: "uses_missing_map".into(),
            symbol: "nowhere_map".into()
        }
    );
    assert!(e.to_string().contains("nowhere_map"));
}

#[test]
fn missing_extern_function() {
    let e = parse(&test_object("missing_func.o")).unwrap_err();
    assert_eq!(
        e,
        ObjectError::MissingSymbol {
            program: "calls_missing_func".into(),
            symbol: "nowhere_func".into()
        }
    );
}

#[test]
fn unsupported_map_type_is_reported() {
    let mut obj = parse(&test_object("maps.o")).unwrap();
    let i = obj.map_index("events").unwrap();
    obj.maps[i].map_type = 21; // BLOOM_FILTER... no: 21 is SK_STORAGE; neither is supported
    assert_eq!(
        obj.check_map_types(),
        Err(ObjectError::UnsupportedMapType {
            map: "events".into(),
            map_type: 21
        })
    );
    let o = obj.map_index("outer").unwrap();
    obj.maps[i].map_type = 27;
    obj.maps[o].inner.as_mut().unwrap().map_type = 30;
    assert_eq!(
        obj.check_map_types(),
        Err(ObjectError::UnsupportedMapType {
            map: "outer.inner".into(),
            map_type: 30
        })
    );
}

#[test]
fn random_byte_mutations() {
    // A few random bytes changed anywhere (symbols, relocations, BTF, code):
    // any result, no panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for name in ["linking.o", "globals.o", "maps.o"] {
        let bytes = test_object(name);
        for _ in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..1 + rnd() % 4 {
                let at = rnd() as usize % b.len();
                b[at] = rnd() as u8;
            }
            no_caught_panic(&parse(&b));
        }
    }
}
