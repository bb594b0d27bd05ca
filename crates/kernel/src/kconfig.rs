//! Values for libbpf's `__kconfig` externs from the running kernel, as
//! libbpf finds them: `LINUX_KERNEL_VERSION` from uname's release,
//! `LINUX_HAS_BPF_COOKIE` and `LINUX_HAS_SYSCALL_WRAPPER` from what the
//! kernel offers, and `CONFIG_*` from `/boot/config-$(uname -r)` or
//! `/proc/config.gz` when either is there. The object rewrite itself is
//! `bpfkit_object::kernel_object`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

/// The running kernel's answers, read once per process.
pub struct KernelConfig {
    values: HashMap<String, String>,
    /// Where the `CONFIG_*` values came from, if anywhere.
    pub source: Option<String>,
}

impl KernelConfig {
    /// The value of an extern, as a `.config` line writes it.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }

    /// The config of the running kernel (read on first use).
    pub fn running() -> &'static KernelConfig {
        static CONFIG: OnceLock<KernelConfig> = OnceLock::new();
        CONFIG.get_or_init(read_running)
    }

    /// From a `.config` text and a `uname -r` release.
    pub fn from_parts(config: Option<(&str, String)>, release: &str) -> KernelConfig {
        let mut values = HashMap::new();
        let source = config.map(|(text, source)| {
            values.extend(parse_config(text));
            source
        });
        let version = kernel_version(release);
        values.insert("LINUX_KERNEL_VERSION".into(), version.to_string());
        // BPF cookies for perf-event (uprobe) links came in 5.15; the x86-64
        // syscall wrappers (pt_regs-taking __x64_sys_*) in 4.17.
        let at_least = |a: u32, b: u32| version >= (a << 16) + (b << 8);
        values.insert(
            "LINUX_HAS_BPF_COOKIE".into(),
            if at_least(5, 15) { "y" } else { "n" }.into(),
        );
        values.insert(
            "LINUX_HAS_SYSCALL_WRAPPER".into(),
            if cfg!(target_arch = "x86_64") && at_least(4, 17) {
                "y"
            } else {
                "n"
            }
            .into(),
        );
        KernelConfig { values, source }
    }
}

fn read_running() -> KernelConfig {
    let release = release();
    let boot = format!("/boot/config-{release}");
    let config = std::fs::read_to_string(&boot)
        .ok()
        .map(|t| (t, boot))
        .or_else(|| {
            let gz = std::fs::read("/proc/config.gz").ok()?;
            let mut text = String::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_string(&mut text)
                .ok()?;
            Some((text, "/proc/config.gz".to_string()))
        });
    KernelConfig::from_parts(
        config.as_ref().map(|(t, s)| (t.as_str(), s.clone())),
        &release,
    )
}

/// `uname -r`.
fn release() -> String {
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: the kernel NUL-terminates release.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// libbpf's `KERNEL_VERSION(a, b, c)` of a release like `6.18.4-foo`
/// (the patch level capped at 255); 0 when it does not parse.
pub fn kernel_version(release: &str) -> u32 {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(a)), Some(Some(b)), Some(Some(c))) => {
            (a.min(255) << 16) + (b.min(255) << 8) + c.min(255)
        }
        _ => 0,
    }
}

/// `CONFIG_X=value` lines; `# CONFIG_X is not set` is `n`, as libbpf reads it.
pub fn parse_config(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            return name
                .starts_with("CONFIG_")
                .then(|| (name.to_string(), "n".to_string()));
        }
        let (name, value) = line.split_once('=')?;
        name.starts_with("CONFIG_")
            .then(|| (name.to_string(), value.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_config_lines_read_as_libbpf_reads_them() {
        assert_eq!(
            kernel_version("6.18.44-fc-v1300"),
            (6 << 16) + (18 << 8) + 44
        );
        assert_eq!(kernel_version("5.4.300"), (5 << 16) + (4 << 8) + 255);
        assert_eq!(kernel_version("garbage"), 0);
        let c = KernelConfig::from_parts(
            Some((
                "# comment\nCONFIG_HZ=250\n# CONFIG_FOO is not set\nCONFIG_S=\"x y\"\nCONFIG_M=m\n",
                "test".into(),
            )),
            "6.18.0",
        );
        assert_eq!(c.get("CONFIG_HZ").as_deref(), Some("250"));
        assert_eq!(c.get("CONFIG_FOO").as_deref(), Some("n"));
        assert_eq!(c.get("CONFIG_S").as_deref(), Some("\"x y\""));
        assert_eq!(c.get("CONFIG_M").as_deref(), Some("m"));
        assert_eq!(c.get("CONFIG_NONE"), None);
        assert_eq!(c.get("LINUX_HAS_BPF_COOKIE").as_deref(), Some("y"));
        assert_eq!(
            KernelConfig::from_parts(None, "5.10.1")
                .get("LINUX_HAS_BPF_COOKIE")
                .as_deref(),
            Some("n")
        );
    }
}
