//! The verifier's log.

/// The text the verifier wrote while checking a program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifierLog(String);

impl VerifierLog {
    pub fn new(text: impl Into<String>) -> Self {
        VerifierLog(text.into())
    }

    /// The log in a buffer the kernel filled: up to the first NUL.
    pub fn from_buffer(buf: &[u8]) -> Self {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        VerifierLog(String::from_utf8_lossy(&buf[..end]).into_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// The first line of the verifier's complaint: the log ends with the
    /// instruction trace (`12: (bf) r1 = r2`, `from 3 to 5: ...`, `; source`),
    /// then the error (one or more lines), then statistics (`processed N
    /// insns ...`). This is the first line after the last trace line, not
    /// counting the statistics; empty when the log has no such line.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self
            .0
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !is_stats(l))
            .collect();
        let first_error = lines.iter().rposition(|l| is_trace(l)).map_or(0, |i| i + 1);
        lines
            .get(first_error)
            .or(lines.last())
            .copied()
            .unwrap_or("")
    }
}

impl VerifierLog {
    /// The index of the instruction the verifier stopped at: the last
    /// `N: (op) ...` line of the trace.
    pub fn failing_insn(&self) -> Option<usize> {
        self.0.lines().rev().find_map(|l| {
            let (n, rest) = l.split_once(": (")?;
            let code = rest.get(..3)?;
            (code.ends_with(')') && u8::from_str_radix(&code[..2], 16).is_ok())
                .then(|| n.parse().ok())
                .flatten()
        })
    }
}

fn is_stats(line: &str) -> bool {
    [
        "processed ",
        "verification time ",
        "stack depth ",
        "insn_stack_depth",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// Lines of the instruction trace, as opposed to messages.
fn is_trace(line: &str) -> bool {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0 && line[digits..].starts_with(':'))
        || line.starts_with("from ")
        || line.starts_with("; ")
        || line.starts_with("func#")
        || line.starts_with("Live regs before insn:")
        || line.starts_with("Func#")
        || line.starts_with("last_idx ")
        || line.starts_with("mark_precise")
        || line.starts_with("regs=")
        || line.starts_with("parent ")
        || line.starts_with("caller:")
        || line.starts_with("callee:")
        || line.starts_with("returning from callee:")
        || line.starts_with("to caller at ")
        || line.starts_with("propagating ")
}

impl std::fmt::Display for VerifierLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn failing_insn_is_the_last_trace_line() {
        let log = super::VerifierLog::new(
            "0: R1=ctx() R10=fp0\n0: (61) r1 = *(u32 *)(r1 +0)\n; x @ a.c:14\n1: (71) r1 = *(u8 *)(r1 +12)\ninvalid access to packet\nprocessed 2 insns\n",
        );
        assert_eq!(log.failing_insn(), Some(1));
        assert_eq!(
            super::VerifierLog::new("no trace here").failing_insn(),
            None
        );
    }

    use super::*;

    #[test]
    fn error_line_is_the_first_line_after_the_trace() {
        let log = VerifierLog::new(
            "func#0 @0\n0: R1=ctx() R10=fp0\n0: (bf) r6 = r1                       ; R1=ctx() R6_w=ctx()\n\
             1: (61) r0 = *(u32 *)(r1 +0)\ninvalid access to packet, off=0 size=8, R1(id=0,off=0,r=0)\n\
             R1 offset is outside of the packet\nprocessed 2 insns (limit 1000000) max_states_per_insn 0 \
             total_states 0 peak_states 0 mark_read 0\n",
        );
        assert_eq!(
            log.error_line(),
            "invalid access to packet, off=0 size=8, R1(id=0,off=0,r=0)"
        );
    }

    #[test]
    fn a_log_with_only_an_error_is_its_own_error_line() {
        assert_eq!(
            VerifierLog::new("unreachable insn 3\n").error_line(),
            "unreachable insn 3"
        );
        assert_eq!(VerifierLog::new("").error_line(), "");
        assert!(VerifierLog::new(" \n").is_empty());
    }

    #[test]
    fn from_buffer_stops_at_nul() {
        assert_eq!(VerifierLog::from_buffer(b"abc\n\0junk").as_str(), "abc\n");
        assert_eq!(VerifierLog::from_buffer(b"abc").as_str(), "abc");
    }
}
