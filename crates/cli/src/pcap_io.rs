//! Reading and writing packet captures (pcap and pcapng, on pcap-file).
//!
//! Captures are read whole from memory with pcap-file's parsers rather than
//! its streaming readers, so an error can name the packet and the byte
//! offset where the file went wrong (a capture cut off mid-packet is the
//! common case).

use anyhow::{bail, Context, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapParser, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::{Block, PcapNgParser, PcapNgWriter};
use pcap_file::{DataLink, PcapError};
use std::path::Path;
use std::time::Duration;

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub timestamp: Duration,
    /// Length on the wire (may exceed `data` when the capture was snapped).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

fn describe(e: &PcapError) -> String {
    match e {
        PcapError::IncompleteBuffer => "the file ends in the middle of it".into(),
        other => other.to_string(),
    }
}

/// Reads every packet of a pcap or pcapng file with an Ethernet link type.
pub fn read(path: &Path) -> Result<Vec<Packet>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    parse(&bytes).with_context(|| path.display().to_string())
}

/// Parses a capture held in memory.
pub fn parse(bytes: &[u8]) -> Result<Vec<Packet>> {
    let magic: [u8; 4] = match bytes.get(..4) {
        Some(m) => m.try_into().expect("4 bytes"),
        None => bail!(
            "{} bytes: too short to be a pcap or pcapng file",
            bytes.len()
        ),
    };
    if PCAP_MAGICS.contains(&magic) {
        parse_pcap(bytes)
    } else if magic == PCAPNG_MAGIC {
        parse_pcapng(bytes)
    } else {
        bail!("not a pcap or pcapng file (magic {magic:02x?})")
    }
}

fn parse_pcap(bytes: &[u8]) -> Result<Vec<Packet>> {
    let (mut rest, parser) = PcapParser::new(bytes)
        .map_err(|e| anyhow::anyhow!("pcap file header: {}", describe(&e)))?;
    let link = parser.header().datalink;
    if link != DataLink::ETHERNET {
        bail!("link type {link:?}: only Ethernet captures can be run through packet programs");
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let (next, p) = parser.next_packet(rest).map_err(|e| {
            anyhow::anyhow!(
                "packet {} at byte {offset}: {}",
                out.len() + 1,
                describe(&e)
            )
        })?;
        out.push(Packet {
            timestamp: p.timestamp,
            orig_len: p.orig_len,
            data: p.data.into_owned(),
        });
        rest = next;
    }
    Ok(out)
}

fn parse_pcapng(bytes: &[u8]) -> Result<Vec<Packet>> {
    let (mut rest, mut parser) = PcapNgParser::new(bytes)
        .map_err(|e| anyhow::anyhow!("pcapng section header: {}", describe(&e)))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let at = |n: usize| format!("block at byte {offset} (after packet {n})");
        let (next, block) = parser
            .next_block(rest)
            .map_err(|e| anyhow::anyhow!("{}: {}", at(out.len()), describe(&e)))?;
        match block {
            Block::EnhancedPacket(p) => {
                let link = parser
                    .packet_interface(&p)
                    .map(|i| i.linktype)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{}: unknown interface {}", at(out.len()), p.interface_id)
                    })?;
                if link != DataLink::ETHERNET {
                    bail!(
                        "{}: link type {link:?}: only Ethernet packets can be run",
                        at(out.len())
                    );
                }
                out.push(Packet {
                    timestamp: p.timestamp,
                    orig_len: p.original_len,
                    data: p.data.into_owned(),
                });
            }
            Block::SimplePacket(p) => out.push(Packet {
                timestamp: Duration::ZERO,
                orig_len: p.original_len,
                data: p.data.into_owned(),
            }),
            _ => {}
        }
        rest = next;
    }
    Ok(out)
}

/// Writes packets as pcapng when the file name ends in `.pcapng`, as pcap
/// otherwise (Ethernet either way).
pub fn write(path: &Path, packets: &[Packet]) -> Result<()> {
    if path.extension().is_some_and(|e| e == "pcapng") {
        write_pcapng(path, packets)
    } else {
        write_pcap(path, packets)
    }
}

fn write_pcapng(path: &Path, packets: &[Packet]) -> Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    let ctx = || path.display().to_string();
    let mut w = PcapNgWriter::new(std::io::BufWriter::new(file)).with_context(ctx)?;
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: Vec::new(),
    })
    .with_context(ctx)?;
    for p in packets {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: p.timestamp,
            original_len: p.orig_len.max(p.data.len() as u32),
            data: std::borrow::Cow::Borrowed(&p.data),
            options: Vec::new(),
        })
        .with_context(ctx)?;
    }
    use std::io::Write;
    w.into_inner().flush().with_context(ctx)
}

/// Writes packets as a pcap file (Ethernet, microsecond timestamps).
fn write_pcap(path: &Path, packets: &[Packet]) -> Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(std::io::BufWriter::new(file), header)
        .with_context(|| path.display().to_string())?;
    for p in packets {
        let orig_len = p.orig_len.max(p.data.len() as u32);
        w.write_packet(&PcapPacket::new(p.timestamp, orig_len, &p.data))
            .with_context(|| path.display().to_string())?;
    }
    use std::io::Write;
    w.into_writer()
        .flush()
        .with_context(|| path.display().to_string())
}
