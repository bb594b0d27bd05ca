use super::Parsed;

pub fn parse(line: &str) -> Result<Parsed, String> {
    super::conformance::parse(line)
}
