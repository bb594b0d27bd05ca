//! Which context fields each program type may read and write, following the
//! kernel's `*_is_valid_access` functions, and where the VM keeps the
//! pointer fields (the uapi structs hold them as u32; the VM needs 64 bits).

use super::ContextKind;

/// sizeof(struct xdp_md).
pub const XDP_MD_SIZE: usize = 24;
/// sizeof(struct __sk_buff).
pub const SK_BUFF_SIZE: usize = 192;

/// Offsets in the context memory of the 64-bit packet pointers, after the
/// uapi struct: data, data_end, data_meta.
pub const XDP_SHADOW: usize = XDP_MD_SIZE;
pub const SKB_SHADOW: usize = SK_BUFF_SIZE;
/// Bytes of shadow pointers after the uapi struct.
pub const SHADOW_SIZE: usize = 24;

pub mod xdp_md {
    pub const DATA: usize = 0;
    pub const DATA_END: usize = 4;
    pub const DATA_META: usize = 8;
    pub const INGRESS_IFINDEX: usize = 12;
    pub const RX_QUEUE_INDEX: usize = 16;
    pub const EGRESS_IFINDEX: usize = 20;
}

pub mod sk_buff {
    pub const LEN: usize = 0;
    pub const PKT_TYPE: usize = 4;
    pub const MARK: usize = 8;
    pub const QUEUE_MAPPING: usize = 12;
    pub const PROTOCOL: usize = 16;
    pub const VLAN_PRESENT: usize = 20;
    pub const VLAN_TCI: usize = 24;
    pub const VLAN_PROTO: usize = 28;
    pub const PRIORITY: usize = 32;
    pub const INGRESS_IFINDEX: usize = 36;
    pub const IFINDEX: usize = 40;
    pub const TC_INDEX: usize = 44;
    pub const CB: usize = 48;
    pub const HASH: usize = 68;
    pub const TC_CLASSID: usize = 72;
    pub const DATA: usize = 76;
    pub const DATA_END: usize = 80;
    pub const NAPI_ID: usize = 84;
    pub const FAMILY: usize = 88;
    pub const REMOTE_IP4: usize = 92;
    pub const LOCAL_IP4: usize = 96;
    pub const REMOTE_IP6: usize = 100;
    pub const LOCAL_IP6: usize = 116;
    pub const REMOTE_PORT: usize = 132;
    pub const LOCAL_PORT: usize = 136;
    pub const DATA_META: usize = 140;
    pub const FLOW_KEYS: usize = 144;
    pub const TSTAMP: usize = 152;
    pub const WIRE_LEN: usize = 160;
    pub const GSO_SEGS: usize = 164;
    pub const SK: usize = 168;
    pub const GSO_SIZE: usize = 176;
    pub const TSTAMP_TYPE: usize = 180;
    pub const HWTSTAMP: usize = 184;
}

const XDP_FIELDS: &[(usize, usize, &str)] = &[
    (0, 4, "data"),
    (4, 4, "data_end"),
    (8, 4, "data_meta"),
    (12, 4, "ingress_ifindex"),
    (16, 4, "rx_queue_index"),
    (20, 4, "egress_ifindex"),
];

const SKB_FIELDS: &[(usize, usize, &str)] = &[
    (0, 4, "len"),
    (4, 4, "pkt_type"),
    (8, 4, "mark"),
    (12, 4, "queue_mapping"),
    (16, 4, "protocol"),
    (20, 4, "vlan_present"),
    (24, 4, "vlan_tci"),
    (28, 4, "vlan_proto"),
    (32, 4, "priority"),
    (36, 4, "ingress_ifindex"),
    (40, 4, "ifindex"),
    (44, 4, "tc_index"),
    (48, 4, "cb[0]"),
    (52, 4, "cb[1]"),
    (56, 4, "cb[2]"),
    (60, 4, "cb[3]"),
    (64, 4, "cb[4]"),
    (68, 4, "hash"),
    (72, 4, "tc_classid"),
    (76, 4, "data"),
    (80, 4, "data_end"),
    (84, 4, "napi_id"),
    (88, 4, "family"),
    (92, 4, "remote_ip4"),
    (96, 4, "local_ip4"),
    (100, 16, "remote_ip6"),
    (116, 16, "local_ip6"),
    (132, 4, "remote_port"),
    (136, 4, "local_port"),
    (140, 4, "data_meta"),
    (144, 8, "flow_keys"),
    (152, 8, "tstamp"),
    (160, 4, "wire_len"),
    (164, 4, "gso_segs"),
    (168, 8, "sk"),
    (176, 4, "gso_size"),
    (180, 1, "tstamp_type"),
    (181, 3, "padding"),
    (184, 8, "hwtstamp"),
];

/// The uapi struct of a kind's context, for messages.
pub fn struct_name(kind: ContextKind) -> &'static str {
    match kind {
        ContextKind::Xdp => "xdp_md",
        ContextKind::SchedCls
        | ContextKind::SocketFilter
        | ContextKind::CgroupSkb
        | ContextKind::SkSkb => "__sk_buff",
        ContextKind::Plain => "the context",
        ContextKind::Tracepoint => "the tracepoint record",
        ContextKind::RawTracepoint => "bpf_raw_tracepoint_args",
        ContextKind::PerfEvent => "bpf_perf_event_data",
    }
}

/// The name of the field holding byte `off`.
pub fn field_name(kind: ContextKind, off: i64) -> &'static str {
    let table = match kind {
        ContextKind::Xdp => XDP_FIELDS,
        _ => SKB_FIELDS,
    };
    table
        .iter()
        .find(|(start, len, _)| off >= *start as i64 && off < (*start + *len) as i64)
        .map_or("out of range", |f| f.2)
}

/// What becomes of a valid context access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads or writes the field at its uapi offset.
    Keep,
    /// A 32-bit packet pointer load: becomes a 64-bit load at this offset.
    Shadow(i16),
    /// A narrow load at least as wide as the kernel field behind it: the
    /// kernel loads the whole field whatever the offset inside the u32, so
    /// the load moves to the start of the u32 (same size).
    Whole(i16),
}

/// The size of the sk_buff member behind an __sk_buff u32 field (the
/// convert_ctx_access target size), for the fields narrower than 4 bytes.
fn skb_target_size(field: usize) -> usize {
    use sk_buff::*;
    match field {
        PKT_TYPE => 1,
        QUEUE_MAPPING | PROTOCOL | VLAN_TCI | VLAN_PROTO | TC_INDEX | TC_CLASSID | FAMILY
        | REMOTE_PORT | LOCAL_PORT | GSO_SEGS | GSO_SIZE => 2,
        _ => 4,
    }
}

fn within(off: i64, start: usize, len: usize) -> bool {
    off >= start as i64 && off < (start + len) as i64
}

/// Whether `kind` may access `size` bytes at `off` of its context, and how.
/// `None`: the kernel's verifier refuses the access.
pub fn check(kind: ContextKind, off: i64, size: usize, write: bool) -> Option<Access> {
    match kind {
        ContextKind::Xdp => xdp(off, size, write),
        ContextKind::SchedCls
        | ContextKind::SocketFilter
        | ContextKind::CgroupSkb
        | ContextKind::SkSkb => skb(kind, off, size, write),
        _ => Some(Access::Keep),
    }
}

/// xdp_is_valid_access (an XDP program not attached to a devmap: no
/// egress_ifindex; nothing is writable).
fn xdp(off: i64, size: usize, write: bool) -> Option<Access> {
    use xdp_md::*;
    if write || !(0..XDP_MD_SIZE as i64).contains(&off) || off % size as i64 != 0 || size != 4 {
        return None;
    }
    match off as usize {
        DATA => Some(Access::Shadow(XDP_SHADOW as i16)),
        DATA_END => Some(Access::Shadow(XDP_SHADOW as i16 + 8)),
        DATA_META => Some(Access::Shadow(XDP_SHADOW as i16 + 16)),
        EGRESS_IFINDEX => None,
        _ => Some(Access::Keep),
    }
}

fn skb(kind: ContextKind, off: i64, size: usize, write: bool) -> Option<Access> {
    use sk_buff::*;
    let r = |start: usize, len: usize| within(off, start, len);
    let cb = r(CB, 20);
    let sk_fields = r(FAMILY, DATA_META - FAMILY);
    // The program type's own rules (sk_filter_is_valid_access,
    // cg_skb_is_valid_access, tc_cls_act_is_valid_access,
    // sk_skb_is_valid_access).
    match kind {
        ContextKind::SocketFilter => {
            if r(TC_CLASSID, 4)
                || r(DATA, 4)
                || r(DATA_META, 4)
                || r(DATA_END, 4)
                || sk_fields
                || r(TSTAMP, 8)
                || r(WIRE_LEN, 4)
                || r(HWTSTAMP, 8)
            {
                return None;
            }
            if write && !cb {
                return None;
            }
        }
        ContextKind::CgroupSkb => {
            if r(TC_CLASSID, 4) || r(DATA_META, 4) || r(WIRE_LEN, 4) {
                return None;
            }
            if write && !(r(MARK, 4) || r(PRIORITY, 4) || cb || r(TSTAMP, 8)) {
                return None;
            }
        }
        ContextKind::SchedCls => {
            if write
                && !(r(MARK, 4)
                    || r(TC_INDEX, 4)
                    || r(PRIORITY, 4)
                    || r(TC_CLASSID, 4)
                    || cb
                    || r(TSTAMP, 8)
                    || r(QUEUE_MAPPING, 4))
            {
                return None;
            }
            if sk_fields {
                return None;
            }
            if off == TSTAMP_TYPE as i64 {
                return (size == 1).then_some(Access::Keep);
            }
        }
        ContextKind::SkSkb => {
            if r(TC_CLASSID, 4)
                || r(DATA_META, 4)
                || r(TSTAMP, 8)
                || r(WIRE_LEN, 4)
                || r(HWTSTAMP, 8)
            {
                return None;
            }
            if write && !(r(TC_INDEX, 4) || r(PRIORITY, 4)) {
                return None;
            }
            if r(MARK, 4) {
                return None;
            }
        }
        _ => return None,
    }
    // bpf_skb_is_valid_access.
    if !(0..SK_BUFF_SIZE as i64).contains(&off) || off % size as i64 != 0 {
        return None;
    }
    if cb {
        if off + size as i64 > (CB + 20) as i64 {
            return None;
        }
    } else if r(REMOTE_IP6, 16)
        || r(LOCAL_IP6, 16)
        || r(REMOTE_IP4, 4)
        || r(LOCAL_IP4, 4)
        || r(DATA, 4)
        || r(DATA_META, 4)
        || r(DATA_END, 4)
    {
        if size != 4 {
            return None;
        }
    } else if r(FLOW_KEYS, 8) {
        return None;
    } else if r(HWTSTAMP, 8) {
        if write || size != 8 {
            return None;
        }
    } else if r(TSTAMP, 8) {
        if size != 8 {
            return None;
        }
    } else if r(SK, 8) {
        if off != SK as i64 || write || size != 8 {
            return None;
        }
    } else if off == TSTAMP_TYPE as i64 || r(TSTAMP_TYPE + 1, 3) {
        return None;
    } else if write {
        if size != 4 {
            return None;
        }
    } else if size > 4 {
        return None;
    }
    let field = off as usize & !3;
    Some(match off as usize {
        DATA => Access::Shadow(SKB_SHADOW as i16),
        DATA_END => Access::Shadow(SKB_SHADOW as i16 + 8),
        DATA_META => Access::Shadow(SKB_SHADOW as i16 + 16),
        _ if !write
            && !cb
            && size < 4
            && off as usize != field
            && size >= skb_target_size(field) =>
        {
            Access::Whole(field as i16)
        }
        _ => Access::Keep,
    })
}
