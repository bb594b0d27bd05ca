//! `pci_vendor`, `pci_device`, `pci_class`, `pci_subclass`: names from
//! pci.ids, parsed as github.com/jaypipes/pcidb (ebpf_exporter's parser)
//! does.

use super::{go_hex, parse_go_int, Step};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What every PCI decoder returns when no pci.ids exists.
pub(crate) const MISSING_PCI_IDS: &str = "missing pci.ids db";

#[derive(Default, Debug)]
pub(crate) struct PciDb {
    /// `8086` → `Intel Corporation`.
    vendors: HashMap<String, String>,
    /// vendor id + device id, `80861000` → name.
    products: HashMap<String, String>,
    /// `02` → (`Network controller`, [(`00`, `Ethernet controller`), ...]).
    classes: HashMap<String, (String, Vec<(String, String)>)>,
}

/// Characters `from..` of `line`, empty if shorter.
fn chars_from(line: &str, from: usize) -> String {
    line.chars().skip(from).collect()
}

/// Characters `from..to` of `line`.
fn chars_range(line: &str, from: usize, to: usize) -> String {
    line.chars()
        .skip(from)
        .take(to.saturating_sub(from))
        .collect()
}

impl PciDb {
    /// pcidb's fixed-column parse: `C xx  name` starts a class, a line not
    /// starting with a tab is a vendor `xxxx  name`, one tab is a subclass
    /// `\txx  name` inside a class block and a device `\txxxx  name` inside
    /// a vendor block; two tabs (programming interfaces, subsystems) are not
    /// used by the decoders.
    pub(crate) fn parse(text: &str) -> PciDb {
        let mut db = PciDb::default();
        let mut vendor: Option<String> = None;
        let mut class: Option<String> = None;
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('C') {
                let id = chars_range(line, 2, 4);
                db.classes
                    .insert(id.clone(), (chars_from(line, 6), Vec::new()));
                class = Some(id);
                vendor = None;
                continue;
            }
            if !line.starts_with('\t') {
                let id = chars_range(line, 0, 4);
                db.vendors.insert(id.clone(), chars_from(line, 6));
                vendor = Some(id);
                class = None;
                continue;
            }
            if line.starts_with("\t\t") || line.chars().count() < 2 {
                continue;
            }
            if let Some(class) = &class {
                let sub = (chars_range(line, 1, 3), chars_from(line, 5));
                if let Some((_, subs)) = db.classes.get_mut(class) {
                    subs.push(sub);
                }
            } else if let Some(vendor) = &vendor {
                let key = format!("{vendor}{}", chars_range(line, 1, 5));
                db.products.insert(key, chars_from(line, 7));
            }
        }
        db
    }
}

pub(crate) struct Pci {
    paths: Vec<PathBuf>,
    db: OnceLock<Option<PciDb>>,
}

impl Pci {
    pub(crate) fn new(paths: Vec<PathBuf>) -> Pci {
        Pci {
            paths,
            db: OnceLock::new(),
        }
    }

    /// The first readable pci.ids, parsed once.
    fn db(&self) -> Option<&PciDb> {
        self.db
            .get_or_init(|| {
                self.paths
                    .iter()
                    .find_map(|p| std::fs::read(p).ok())
                    .map(|bytes| PciDb::parse(&String::from_utf8_lossy(&bytes)))
            })
            .as_ref()
    }

    /// `pci_vendor`: decimal vendor id → vendor name, else
    /// `unknown pci vendor: 0x<%02x>`.
    pub(crate) fn vendor(&self, input: &[u8]) -> Step {
        let Some(db) = self.db() else {
            return Ok(MISSING_PCI_IDS.as_bytes().to_vec());
        };
        let key = go_hex(parse_go_int(input)?, 2);
        Ok(match db.vendors.get(&key) {
            Some(name) => name.clone().into_bytes(),
            None => format!("unknown pci vendor: 0x{key}").into_bytes(),
        })
    }

    /// `pci_device`: decimal `vendor << 16 | device` → device name, else
    /// `unknown pci device: 0x<%04x>`.
    pub(crate) fn device(&self, input: &[u8]) -> Step {
        let Some(db) = self.db() else {
            return Ok(MISSING_PCI_IDS.as_bytes().to_vec());
        };
        let key = go_hex(parse_go_int(input)?, 4);
        Ok(match db.products.get(&key) {
            Some(name) => name.clone().into_bytes(),
            None => format!("unknown pci device: 0x{key}").into_bytes(),
        })
    }

    /// `pci_class`: decimal class id → class name, else
    /// `unknown pci class: 0x<%02x>`.
    pub(crate) fn class(&self, input: &[u8]) -> Step {
        let Some(db) = self.db() else {
            return Ok(MISSING_PCI_IDS.as_bytes().to_vec());
        };
        let key = go_hex(parse_go_int(input)?, 2);
        Ok(match db.classes.get(&key) {
            Some((name, _)) => name.clone().into_bytes(),
            None => format!("unknown pci class: 0x{key}").into_bytes(),
        })
    }

    /// `pci_subclass`: decimal `class << 8 | subclass` → subclass name, else
    /// `unknown pci subclass: 0xSS (class 0xCC)` or `unknown pci class: 0xCC`.
    pub(crate) fn subclass(&self, input: &[u8]) -> Step {
        let Some(db) = self.db() else {
            return Ok(MISSING_PCI_IDS.as_bytes().to_vec());
        };
        let num = parse_go_int(input)?;
        let class_id = go_hex(num >> 8, 2);
        let Some((_, subs)) = db.classes.get(&class_id) else {
            return Ok(format!("unknown pci class: 0x{class_id}").into_bytes());
        };
        let sub_id = go_hex(num & 0xff, 2);
        Ok(match subs.iter().find(|(id, _)| *id == sub_id) {
            Some((_, name)) => name.clone().into_bytes(),
            None => format!("unknown pci subclass: 0x{sub_id} (class 0x{class_id})").into_bytes(),
        })
    }
}
