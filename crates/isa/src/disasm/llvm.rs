use crate::Instruction;

pub fn format(insn: &Instruction) -> String {
    super::conformance::format(insn)
}
