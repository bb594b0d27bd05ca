//! `ifname` and `majorminor`: names the running system gives to numbers.

use super::{first_bytes, simple::go_bytes, Step, StepError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

/// Names kept per cache before it is cleared.
const MAX_NAMES: usize = 4096;

fn cache_get(cache: &RwLock<HashMap<u32, Vec<u8>>>, key: u32) -> Option<Vec<u8>> {
    cache
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned()
}

fn cache_put(cache: &RwLock<HashMap<u32, Vec<u8>>>, key: u32, name: Vec<u8>) {
    let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= MAX_NAMES {
        cache.clear();
    }
    cache.insert(key, name);
}

fn first_u32(decoder: &str, input: &[u8]) -> Result<u32, StepError> {
    match first_bytes::<4>(input) {
        Some(bytes) => Ok(u32::from_ne_bytes(bytes)),
        None => Err(StepError::Failed(format!(
            "{decoder} needs 4 bytes, got {}",
            go_bytes(input)
        ))),
    }
}

/// `ifname`: names found are remembered (an index is not looked up again).
#[derive(Default)]
pub(crate) struct IfNames {
    names: RwLock<HashMap<u32, Vec<u8>>>,
}

impl IfNames {
    /// `ifname`: the first 4 bytes as a host-order interface index → its
    /// name (`lo`), else `unknown:N`.
    pub(crate) fn decode(&self, input: &[u8]) -> Step {
        let index = first_u32("ifname", input)?;
        if let Some(name) = cache_get(&self.names, index) {
            return Ok(name);
        }
        let mut buf = [0u8; libc::IF_NAMESIZE];
        // SAFETY: buf holds IF_NAMESIZE bytes, as if_indextoname requires; it
        // writes a NUL-terminated name there or returns NULL.
        let ret = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
        if ret.is_null() {
            return Ok(format!("unknown:{index}").into_bytes());
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = buf[..end].to_vec();
        cache_put(&self.names, index, name.clone());
        Ok(name)
    }
}

/// `majorminor`: device names from /proc/partitions, remembered once found.
pub(crate) struct Partitions {
    path: PathBuf,
    names: RwLock<HashMap<u32, Vec<u8>>>,
}

impl Partitions {
    pub(crate) fn new(path: PathBuf) -> Partitions {
        Partitions {
            path,
            names: RwLock::new(HashMap::new()),
        }
    }

    /// `majorminor`: the first 4 bytes as a host-order u32 in the kernel's
    /// `new_encode_dev` layout (minor low 8 bits, major 12 bits, minor high
    /// bits) → the device's name in /proc/partitions (`sda2`), else
    /// `unknown:MAJOR:MINOR`.
    pub(crate) fn decode(&self, input: &[u8]) -> Step {
        let dev = first_u32("majorminor", input)?;
        if let Some(name) = cache_get(&self.names, dev) {
            return Ok(name);
        }
        let (major, minor) = split_dev(dev);
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("error reading {}: {e}", self.path.display()))?;
        match partition_name(&text, major, minor) {
            Some(name) => {
                let name = name.as_bytes().to_vec();
                cache_put(&self.names, dev, name.clone());
                Ok(name)
            }
            None => Ok(format!("unknown:{major}:{minor}").into_bytes()),
        }
    }
}

/// golang.org/x/sys/unix's Major and Minor applied to a u32.
pub(crate) fn split_dev(dev: u32) -> (u32, u32) {
    let major = (dev & 0x000f_ff00) >> 8;
    let minor = (dev & 0xff) | ((dev & 0xfff0_0000) >> 12);
    (major, minor)
}

/// The name on the /proc/partitions line `major minor #blocks name`.
fn partition_name(text: &str, major: u32, minor: u32) -> Option<&str> {
    let (major, minor) = (major.to_string(), minor.to_string());
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() == 4 && fields[0] == major && fields[1] == minor).then(|| fields[3])
    })
}
