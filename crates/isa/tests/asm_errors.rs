//! What the assembler refuses, in both dialects: the line it points at and
//! a message that names the problem. Also: no input makes it panic.

use bpfkit_isa::asm::assemble;
use bpfkit_isa::disasm::format_insn;
use bpfkit_isa::Dialect;
use common::instruction;
use proptest::prelude::*;

mod common;

/// (dialect, source, line of the error, words the message must contain)
type Case = (Dialect, &'static str, usize, &'static [&'static str]);

const C: Dialect = Dialect::Conformance;
const L: Dialect = Dialect::Llvm;

const CASES: &[Case] = &[
    // Unknown mnemonics and syntax.
    (
        C,
        "mov %r0, 1\nfoo %r0\nexit",
        2,
        &["unknown mnemonic", "`foo`"],
    ),
    (C, "ldxq %r0, [%r1]", 1, &["unknown mnemonic", "`ldxq`"]),
    (
        C,
        "lock fetch sub [%r1], %r2",
        1,
        &["unknown atomic operation", "fetch sub"],
    ),
    (
        C,
        "call wherever %r1",
        1,
        &["unknown call kind", "`wherever`"],
    ),
    (L, "r0 = 1\nfoo r0\nexit", 2, &["unknown mnemonic", "`foo`"]),
    (
        L,
        "exit\nja +1",
        2,
        &["unknown mnemonic `ja`", "conformance dialect"],
    ),
    (L, "(18) r1 = map[id:5]", 1, &["map[id:N]", "ld_pseudo"]),
    (L, "r0 <> r1", 1, &["unknown operator", "`<`"]),
    (L, "r0 = frob(r1)", 1, &["unknown function", "`frob`"]),
    (L, "if r0 ~ 1 goto +1", 1, &["unexpected character", "`~`"]),
    (
        L,
        "r0 = *(u128 *)(r1 + 0)",
        1,
        &["unknown access type", "`u128`"],
    ),
    (L, "r0 = bswap8 r0", 1, &["`bswap8`", "16, 32 or 64"]),
    (L, "ld_pseudo r1, 9, 1", 1, &["unknown ld_pseudo kind", "9"]),
    (
        L,
        "lock *(u8 *)(r1 + 0) += w2",
        1,
        &["u32 and u64 only", "u8"],
    ),
    (L, "w0 += r1", 1, &["mix", "32-bit", "64-bit"]),
    (L, "r0 = -r1", 1, &["negation is in place", "r0 = -r0"]),
    (L, "call r1", 1, &["callx r1"]),
    (L, "goto 1f", 1, &["numeric local label", "`1f`"]),
    (
        L,
        "r2 = atomic_fetch_add((u64 *)(r1 + 0), r3)",
        1,
        &["source register"],
    ),
    (L, "r1 = cmpxchg_64(r2 + 0, r0, r3)", 1, &["r0", "not r1"]),
    (L, "3: (b7) r0 = r1", 1, &["opcode (b7)", "(bf)"]),
    // Bad registers.
    (C, "mov %r11, 1", 1, &["`%r11`", "does not exist"]),
    (C, "add %r0, %r16", 1, &["`%r16`", "does not exist"]),
    (C, "mov r0, 1", 1, &["`r0`", "not a register"]),
    (L, "r11 = 1", 1, &["`r11`", "does not exist"]),
    (L, "r0 = r12", 1, &["`r12`", "does not exist"]),
    (
        L,
        "exit\nif r1 > w15 goto +0",
        2,
        &["`w15`", "does not exist"],
    ),
    (L, "callx r11", 1, &["`r11`", "does not exist"]),
    (L, "r0 = *(u32 *)(r99 + 4)", 1, &["`r99`", "does not exist"]),
    (
        L,
        "r0 = *(u32 *)(w1 + 4)",
        1,
        &["address register", "64-bit"],
    ),
    (
        L,
        "w0 = *(u64 *)(r1 + 0)",
        1,
        &["u64", "64-bit destination"],
    ),
    // Immediates out of range.
    (
        C,
        "mov %r0, 0x100000000",
        1,
        &["immediate", "0x100000000", "32 bits"],
    ),
    (
        C,
        "lddw %r0, 0x10000000000000000",
        1,
        &["immediate", "64 bits"],
    ),
    (C, "jeq %r0, -2147483649, +1", 1, &["immediate", "32 bits"]),
    (
        L,
        "r0 = 0x100000000",
        1,
        &["immediate", "0x100000000", "32 bits", "ll"],
    ),
    (L, "r0 += -2147483649", 1, &["immediate", "32 bits"]),
    (
        L,
        "r1 = 0x10000000000000000 ll",
        1,
        &["immediate", "64 bits"],
    ),
    (
        L,
        "*(u32 *)(r1 + 0) = 4294967296",
        1,
        &["immediate", "32 bits"],
    ),
    (
        L,
        "if r1 == 0x1ffffffff goto +1",
        1,
        &["immediate", "32 bits"],
    ),
    (L, "call 0x100000000", 1, &["immediate", "32 bits"]),
    (L, "r0 = 12abc", 1, &["`12abc` is not a number"]),
    (L, "r0 = 0x", 1, &["`0x` is not a number"]),
    // Offsets out of range.
    (
        C,
        "ldxw %r0, [%r1+40000]",
        1,
        &["offset", "+40000", "16 bits"],
    ),
    (C, "ja +32768", 1, &["jump offset", "32768", "16 bits"]),
    (
        L,
        "r0 = *(u32 *)(r1 + 40000)",
        1,
        &["offset", "+40000", "16 bits"],
    ),
    (
        L,
        "*(u64 *)(r10 - 0x8001) = r1",
        1,
        &["offset", "-0x8001", "16 bits"],
    ),
    (
        L,
        "lock *(u64 *)(r10 + 0x8000) += r1",
        1,
        &["offset", "+0x8000", "16 bits"],
    ),
    (L, "goto +32768", 1, &["jump offset", "32768", "16 bits"]),
    (
        L,
        "exit\nif r1 > 2 goto pc-32770",
        2,
        &["jump offset", "-32770", "16 bits"],
    ),
    (L, "gotol +0x80000000", 1, &["jump offset", "32 bits"]),
    // Labels.
    (C, "ja nowhere\nexit", 1, &["unknown label", "`nowhere`"]),
    (C, "a:\nexit\na:\nexit", 3, &["duplicate label", "`a`"]),
    (L, "goto nowhere\nexit", 1, &["unknown label", "`nowhere`"]),
    (
        L,
        "r0 = 0\n\n// comment\nif r0 == 0 goto out\nexit",
        4,
        &["unknown label", "`out`"],
    ),
    (L, "out:\nexit\nout: exit", 3, &["duplicate label", "`out`"]),
    (
        L,
        "call missing_fn\nexit",
        1,
        &["unknown label", "`missing_fn`"],
    ),
    // Wrong operand counts.
    (C, "mov %r0", 1, &["`mov`", "2 operands", "found 1"]),
    (C, "exit %r0", 1, &["`exit`", "0 operands", "found 1"]),
    (C, "jeq %r0, 1", 1, &["`jeq`", "3 operands", "found 2"]),
    (C, "neg %r0, %r1", 1, &["`neg`", "1 operand", "found 2"]),
    (L, "exit r0", 1, &["`exit`", "no operands"]),
    (L, "r0 +=", 1, &["missing operand"]),
    (L, "r0 =", 1, &["missing operand"]),
    (L, "if r1 > 5 goto", 1, &["missing operand", "jump target"]),
    (
        L,
        "if r1 > goto +1",
        1,
        &["expected a register or an immediate", "`goto`"],
    ),
    (L, "ld_pseudo r1, 1", 1, &["missing operand"]),
    (
        L,
        "r0 = cmpxchg_64(r1 + 0, r0)",
        1,
        &["expected `,` after r0", "found `)`"],
    ),
    (L, "call", 1, &["missing operand", "`call`"]),
    (L, "callx", 1, &["missing operand", "register"]),
    (L, "r0 = r1 r2", 1, &["extra operand", "`r2`"]),
    (L, "goto +1 +2", 1, &["extra operand", "`+`"]),
];

#[test]
fn errors_name_the_line_and_the_problem() {
    let mut failures = Vec::new();
    for (dialect, src, line, words) in CASES {
        match assemble(src, *dialect) {
            Ok(slots) => failures.push(format!("{dialect:?} {src:?}: assembled to {slots:?}")),
            Err(e) => {
                let missing: Vec<_> = words.iter().filter(|w| !e.message.contains(**w)).collect();
                if e.line != *line || !missing.is_empty() {
                    failures.push(format!(
                        "{dialect:?} {src:?}: got line {} `{}`, want line {line} containing {words:?}",
                        e.line, e.message
                    ));
                }
                // The driver prefixes the line for display.
                assert_eq!(e.to_string(), format!("line {}: {}", e.line, e.message));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Text that looks like assembly: mutations of real instructions and runs of
/// the characters the dialects use.
fn asm_like() -> impl Strategy<Value = String> {
    let pieces = proptest::sample::select(vec![
        "r0",
        "r1",
        "w2",
        "r10",
        "r11",
        "w15",
        "%r1",
        "%r11",
        "=",
        "+=",
        "s>>=",
        "-",
        "+",
        "*",
        "(",
        ")",
        "[",
        "]",
        ",",
        "u8",
        "u64",
        "s8",
        "s32",
        "*(u32 *)",
        "skb",
        "goto",
        "gotol",
        "if",
        "call",
        "callx",
        "lock",
        "exit",
        "ll",
        "pc",
        "0x",
        "0",
        "7",
        "-1",
        "0xffffffff",
        "4294967296",
        "99999999999999999999999999999999999999999",
        "ld_pseudo",
        "load_acquire",
        "store_release",
        "atomic_fetch_add",
        "xchg_64",
        "cmpxchg32_32",
        "be16",
        "bswap64",
        "#",
        ";",
        "<",
        ">",
        ":",
        "label",
        "1f",
        "kernel-function#",
        "kfunc",
        "(18)",
        "12:",
        "é",
        " ",
        "\t",
        "lddw",
        "ldxw",
        "mov32",
        "jeq",
        "[%r1+4]",
        "ldacqdw",
    ]);
    prop_oneof![
        proptest::collection::vec(pieces.clone(), 0..12).prop_map(|v| v.concat()),
        proptest::collection::vec(pieces, 0..12).prop_map(|v| v.join(" ")),
        "[ -~]{0,40}",
        "\\PC{0,20}",
    ]
}

/// A real instruction's text with one character replaced, inserted or cut.
fn mutated() -> impl Strategy<Value = (Dialect, String)> {
    (
        instruction(),
        proptest::sample::select(vec![Dialect::Conformance, Dialect::Llvm]),
        any::<prop::sample::Index>(),
        proptest::char::range(' ', '~'),
        0u8..3,
    )
        .prop_map(|(insn, d, at, c, how)| {
            let mut text: Vec<char> = format_insn(&insn, d).chars().collect();
            let i = at.index(text.len() + 1);
            match how {
                0 if i < text.len() => text[i] = c,
                1 if i < text.len() => {
                    text.remove(i);
                }
                _ => text.insert(i, c),
            }
            (d, text.into_iter().collect())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn assemble_never_panics(text in asm_like()) {
        for d in [Dialect::Conformance, Dialect::Llvm] {
            let _ = assemble(&text, d);
        }
    }

    #[test]
    fn mutated_instructions_never_panic((d, text) in mutated()) {
        let _ = assemble(&text, d);
        let _ = assemble(&format!("{text}\n{text}"), d);
    }
}
