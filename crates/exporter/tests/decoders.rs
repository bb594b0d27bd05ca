//! Label decoders, checked against the outputs ebpf_exporter's decoders give.

use bpfkit_exporter::decoders::{
    DecodeError, DecoderOptions, DecoderSpec, Decoders, LabelSpec, DECODER_NAMES,
};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn dec(name: &str) -> DecoderSpec {
    DecoderSpec {
        name: name.to_string(),
        ..DecoderSpec::default()
    }
}

fn static_map(pairs: &[(&str, &str)], allow_unknown: bool) -> DecoderSpec {
    DecoderSpec {
        name: "static_map".to_string(),
        static_map: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        allow_unknown,
        regexps: Vec::new(),
    }
}

fn regexp(exprs: &[&str]) -> DecoderSpec {
    DecoderSpec {
        name: "regexp".to_string(),
        regexps: exprs.iter().map(|s| s.to_string()).collect(),
        ..DecoderSpec::default()
    }
}

fn label(name: &str, size: usize, decoders: Vec<DecoderSpec>) -> LabelSpec {
    LabelSpec {
        name: name.to_string(),
        size,
        padding: 0,
        decoders,
    }
}

/// Runs `decoders` over `input` as one label covering the whole key.
fn run(d: &Decoders, decoders: Vec<DecoderSpec>, input: &[u8]) -> Result<String, DecodeError> {
    let labels = [label("l", input.len(), decoders)];
    d.decode_labels_uncached(&labels, input)
        .map(|mut v| v.remove(0))
}

fn ok(d: &Decoders, decoders: Vec<DecoderSpec>, input: &[u8]) -> String {
    match run(d, decoders.clone(), input) {
        Ok(s) => s,
        Err(e) => panic!("decoding {input:?} with {decoders:?}: {e}"),
    }
}

fn failed_decoder(result: Result<String, DecodeError>) -> String {
    match result {
        Err(DecodeError::Failed { decoder, .. }) => decoder,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bpfkit-decoders-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn with_file(tag: &str, name: &str, contents: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(tag);
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

fn ne64(v: u64) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn ne32(v: u32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

#[test]
fn decoders_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Decoders>();
    assert_send_sync::<DecodeError>();
}

#[test]
fn uint_all_widths_and_bad_lengths() {
    let d = Decoders::new();
    assert_eq!(ok(&d, vec![dec("uint")], &[1]), "1");
    assert_eq!(ok(&d, vec![dec("uint")], &2u16.to_ne_bytes()), "2");
    assert_eq!(ok(&d, vec![dec("uint")], &ne32(4)), "4");
    assert_eq!(ok(&d, vec![dec("uint")], &ne64(8)), "8");
    assert_eq!(
        ok(
            &d,
            vec![dec("uint")],
            &[0x00, 0xb6, 0xc2, 0x5b, 0x85, 0xff, 0xff, 0xff]
        ),
        "18446743546968061440"
    );
    assert_eq!(
        ok(&d, vec![dec("uint")], &[0xff; 8]),
        "18446744073709551615"
    );
    for len in [3, 5, 6, 7, 9, 16] {
        assert_eq!(
            failed_decoder(run(&d, vec![dec("uint")], &vec![1; len])),
            "uint"
        );
    }
}

#[test]
fn hex_and_string() {
    let d = Decoders::new();
    assert_eq!(
        ok(&d, vec![dec("hex")], &[0xde, 0xad, 0x00, 0x0f]),
        "dead000f"
    );
    assert_eq!(
        ok(&d, vec![dec("string")], b"regular string"),
        "regular string"
    );
    assert_eq!(
        ok(
            &d,
            vec![dec("string")],
            b"null terminated string\0bananas after null"
        ),
        "null terminated string"
    );
    assert_eq!(ok(&d, vec![dec("string")], &[0; 16]), "");
    // Not UTF-8: replaced, never an error.
    assert_eq!(
        ok(&d, vec![dec("string")], &[b'a', 0xff, b'b']),
        "a\u{fffd}b"
    );
}

#[test]
fn dname_wire_format() {
    let d = Decoders::new();
    let labels = [label("n", 1, vec![dec("dname")])];
    assert_eq!(d.decode_label(&labels[0], b"").unwrap(), ".");
    assert_eq!(ok(&d, vec![dec("dname")], b"\x03com"), "com");
    assert_eq!(
        ok(&d, vec![dec("dname")], b"\x07example\x03com"),
        "example.com"
    );
    assert_eq!(
        ok(&d, vec![dec("dname")], b"\x07example\x03com\x00"),
        "example.com."
    );
    // A label running past the end: the input comes back unchanged.
    assert_eq!(ok(&d, vec![dec("dname")], b"\x05com"), "\u{5}com");
    // Fixed-size key with zero padding: trim first with `string`? No, the
    // zero bytes are empty labels, as in ebpf_exporter.
    assert_eq!(ok(&d, vec![dec("dname")], b"\x03com\x00\x00"), "com..");
}

#[test]
fn inet_ip_v4_and_v6() {
    let d = Decoders::new();
    let ip = |b: &[u8]| ok(&d, vec![dec("inet_ip")], b);
    assert_eq!(ip(&[1, 2, 3, 4]), "1.2.3.4");
    assert_eq!(ip(&[0, 0, 0, 0]), "0.0.0.0");
    assert_eq!(
        ip(&[
            0x24, 0x00, 0xcb, 0x00, 0x00, 0x04, 0x10, 0x24, 0x00, 0x00, 0x00, 0x00, 0xa2, 0x9e,
            0xfd, 0x8f
        ]),
        "2400:cb00:4:1024::a29e:fd8f"
    );
    let mut v6 = [0u8; 16];
    assert_eq!(ip(&v6), "::");
    v6[15] = 1;
    assert_eq!(ip(&v6), "::1");
    let mut fe80 = [0u8; 16];
    fe80[0] = 0xfe;
    fe80[1] = 0x80;
    fe80[15] = 1;
    assert_eq!(ip(&fe80), "fe80::1");
    let mut trailing = [0u8; 16];
    trailing[1] = 1;
    assert_eq!(ip(&trailing), "1::");
    // Longest zero run wins; on a tie, the first.
    let groups = |g: [u16; 8]| -> Vec<u8> { g.iter().flat_map(|x| x.to_be_bytes()).collect() };
    assert_eq!(
        ip(&groups([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1])),
        "2001:db8::1:0:0:1"
    );
    assert_eq!(
        ip(&groups([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1])),
        "2001:db8:0:1::1"
    );
    // A single zero group is not compressed.
    assert_eq!(ip(&groups([1, 0, 2, 3, 4, 5, 6, 7])), "1:0:2:3:4:5:6:7");
    // IPv4-mapped prints as IPv4 (Go's net.IP); IPv4-compatible does not.
    assert_eq!(
        ip(&groups([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304])),
        "1.2.3.4"
    );
    assert_eq!(ip(&groups([0, 0, 0, 0, 0, 0, 0x0102, 0x0304])), "::102:304");
    // Any other length: Go's "?" + hex.
    assert_eq!(ip(&[1, 2]), "?0102");
}

#[test]
fn errno_names_and_unknowns() {
    let d = Decoders::new();
    let errno = |n: u32| ok(&d, vec![dec("uint"), dec("errno")], &ne32(n));
    assert_eq!(errno(0), "unknown:0");
    assert_eq!(errno(1), "EPERM");
    assert_eq!(errno(11), "EAGAIN");
    assert_eq!(errno(32), "EPIPE");
    assert_eq!(errno(35), "EDEADLK");
    assert_eq!(errno(95), "ENOTSUP");
    assert_eq!(errno(104), "ECONNRESET");
    assert_eq!(errno(133), "EHWPOISON");
    assert_eq!(errno(41), "unknown:41");
    assert_eq!(errno(1000), "unknown:1000");
    // errno parses text: raw bytes, signs and spaces are errors.
    assert_eq!(
        failed_decoder(run(&d, vec![dec("errno")], &ne32(1))),
        "errno"
    );
    assert_eq!(failed_decoder(run(&d, vec![dec("errno")], b"-1")), "errno");
    assert_eq!(failed_decoder(run(&d, vec![dec("errno")], b"+1")), "errno");
    assert_eq!(failed_decoder(run(&d, vec![dec("errno")], b" 1")), "errno");
    assert_eq!(ok(&d, vec![dec("errno")], b"104"), "ECONNRESET");
}

#[test]
fn syscall_x86_64_names() {
    let d = Decoders::new();
    let sys = |n: u64| ok(&d, vec![dec("uint"), dec("syscall")], &ne64(n));
    assert_eq!(sys(0), "read");
    assert_eq!(sys(1), "write");
    assert_eq!(sys(59), "execve");
    assert_eq!(sys(293), "pipe2");
    assert_eq!(sys(447), "memfd_secret");
    assert_eq!(sys(461), "lsm_list_modules");
    // Linux 6.18 additions.
    assert_eq!(sys(462), "mseal");
    assert_eq!(sys(469), "file_setattr");
    // ebpf_exporter's (strace's) names where they differ from the kernel's.
    assert_eq!(sys(17), "pread");
    assert_eq!(sys(231), "exit");
    // Unknown numbers.
    assert_eq!(sys(400), "unknown_syscall:400");
    assert_eq!(sys(470), "unknown_syscall:470");
    // Past i64: Atoi's range error.
    assert_eq!(
        failed_decoder(run(&d, vec![dec("uint"), dec("syscall")], &ne64(u64::MAX))),
        "syscall"
    );
    // Atoi semantics: a sign is fine, a negative number wraps like Go's uint64().
    assert_eq!(
        ok(&d, vec![dec("syscall")], b"-1"),
        "unknown_syscall:18446744073709551615"
    );
    assert_eq!(ok(&d, vec![dec("syscall")], b"+1"), "write");
    assert_eq!(
        failed_decoder(run(&d, vec![dec("syscall")], b"x")),
        "syscall"
    );
    assert_eq!(
        failed_decoder(run(&d, vec![dec("syscall")], &ne32(1))),
        "syscall"
    );
}

#[test]
fn static_map_known_unknown_and_allow_unknown() {
    let d = Decoders::new();
    let rw = [("1", "read"), ("2", "write")];
    let chain = |allow: bool| vec![dec("uint"), static_map(&rw, allow)];
    assert_eq!(ok(&d, chain(false), &[1]), "read");
    assert_eq!(ok(&d, chain(false), &[2]), "write");
    assert_eq!(ok(&d, chain(false), &[3]), "unknown:3");
    assert_eq!(ok(&d, chain(true), &[3]), "3");
    assert_eq!(ok(&d, chain(true), &[1]), "read");
    assert_eq!(
        ok(&d, vec![dec("uint"), static_map(&[], false)], &[1]),
        "empty mapping"
    );
    // Raw bytes that are not UTF-8 never match.
    assert_eq!(ok(&d, vec![static_map(&rw, true)], &[0xff]), "\u{fffd}");
}

#[test]
fn regexp_matches_groups_and_skips() {
    let d = Decoders::new();
    let exprs = ["^systemd-journal$", "^syslog-ng$"];
    let chain = |e: &[&str]| vec![dec("string"), regexp(e)];
    assert_eq!(
        ok(&d, chain(&exprs), b"systemd-journal\0\0\0"),
        "systemd-journal"
    );
    assert_eq!(ok(&d, chain(&exprs), b"syslog-ng\0"), "syslog-ng");
    assert_eq!(
        run(&d, chain(&exprs), b"systemd-bananad"),
        Err(DecodeError::Skip)
    );
    assert_eq!(
        ok(
            &d,
            chain(&["^(systemd).*$", "^syslog-ng$"]),
            b"systemd-bananad"
        ),
        "systemd"
    );
    // Two or more groups never decide: the next expression does.
    assert_eq!(ok(&d, chain(&["^(s)(y).*$", "sys"]), b"systemd"), "sys");
    assert_eq!(
        run(&d, chain(&["^(s)(y).*$"]), b"systemd"),
        Err(DecodeError::Skip)
    );
    // A group that did not take part gives an empty value.
    assert_eq!(ok(&d, chain(&["^x|(y)"]), b"x"), "");
    // Unanchored: the leftmost match.
    assert_eq!(ok(&d, chain(&["[0-9]+"]), b"nginx-123-abc"), "123");
    assert_eq!(failed_decoder(run(&d, chain(&[]), b"a")), "regexp");
    assert_eq!(failed_decoder(run(&d, chain(&["("]), b"a")), "regexp");
    // Skips are not errors.
    let before = d.errors();
    let _ = run(&d, chain(&exprs), b"nope");
    assert_eq!(d.errors(), before);
}

#[test]
fn check_decoder_specs() {
    let d = Decoders::new();
    for name in DECODER_NAMES {
        let spec = if *name == "regexp" {
            regexp(&["a"])
        } else {
            dec(name)
        };
        assert_eq!(d.check(&spec), Ok(()), "{name}");
    }
    assert!(d
        .check(&dec("banana"))
        .unwrap_err()
        .contains("unknown decoder"));
    assert!(d.check(&regexp(&[])).unwrap_err().contains("no regexps"));
    assert!(d
        .check(&regexp(&["ok", "(unclosed"]))
        .unwrap_err()
        .contains("(unclosed"));
    assert!(d
        .check_labels(&[label("a", 0, vec![dec("uint")])])
        .unwrap_err()
        .contains("size is zero"));
    assert!(d
        .check_labels(&[label("a", 4, vec![])])
        .unwrap_err()
        .contains("no decoders"));
    assert!(d
        .check_labels(&[label("a", 4, vec![dec("uint"), dec("nope")])])
        .is_err());
    assert_eq!(d.check_labels(&[label("a", 4, vec![dec("uint")])]), Ok(()));
}

fn zero_padded(s: &str, size: usize) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(size, 0);
    v
}

fn number_and_fruit(fruit_decoders: Vec<DecoderSpec>) -> Vec<LabelSpec> {
    vec![
        label("number", 4, vec![dec("uint")]),
        label("fruit", 32, fruit_decoders),
    ]
}

#[test]
fn decode_labels_splits_by_size_and_padding() {
    let d = Decoders::new();
    let mut key = vec![8, 0, 0, 0];
    key.extend(zero_padded("bananas", 32));
    let labels = number_and_fruit(vec![dec("string")]);
    assert_eq!(d.decode_labels(&labels, &key).unwrap(), ["8", "bananas"]);

    // Padding: only the first byte is the label.
    let mut padded = vec![8, 1, 1, 1];
    padded.extend(zero_padded("bananas", 32));
    let mut labels = number_and_fruit(vec![dec("string")]);
    labels[0].size = 1;
    labels[0].padding = 3;
    assert_eq!(d.decode_labels(&labels, &padded).unwrap(), ["8", "bananas"]);

    // Trailing padding counts towards the key's size.
    let labels = [LabelSpec {
        name: "pid".into(),
        size: 4,
        padding: 4,
        decoders: vec![dec("uint")],
    }];
    assert_eq!(
        d.decode_labels(&labels, &[7, 0, 0, 0, 9, 9, 9, 9]).unwrap(),
        ["7"]
    );

    // string then regexp, both ways.
    let labels = number_and_fruit(vec![
        dec("string"),
        regexp(&["^bananas$", "$is-banana-even-fruit$"]),
    ]);
    assert_eq!(d.decode_labels(&labels, &key).unwrap(), ["8", "bananas"]);
    let labels = number_and_fruit(vec![dec("string"), regexp(&["^tomato$"])]);
    assert_eq!(d.decode_labels(&labels, &key), Err(DecodeError::Skip));
}

#[test]
fn decode_labels_errors() {
    let d = Decoders::new();
    let mut key = vec![8, 0, 0, 0];
    key.extend(zero_padded("potatoes", 16));
    // Not all of the key is covered by labels.
    let labels = [label("number", 4, vec![dec("uint")])];
    match d.decode_labels(&labels, &key) {
        Err(DecodeError::Failed { message, .. }) => {
            assert!(message.contains("20 bytes"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // Too short a key.
    assert!(matches!(
        d.decode_labels(&labels, &[1, 2]),
        Err(DecodeError::Failed { .. })
    ));
    // Zero size, no decoders, unknown decoder.
    assert!(matches!(
        d.decode_labels(&[label("z", 0, vec![dec("uint")])], &[]),
        Err(DecodeError::Failed { label, .. }) if label == "z"
    ));
    assert!(matches!(
        d.decode_labels(&[label("n", 1, vec![])], &[1]),
        Err(DecodeError::Failed { label, .. }) if label == "n"
    ));
    match d.decode_labels(&[label("u", 1, vec![dec("banana")])], &[1]) {
        Err(DecodeError::Failed {
            label,
            decoder,
            message,
        }) => {
            assert_eq!((label.as_str(), decoder.as_str()), ("u", "banana"));
            assert!(message.contains("unknown decoder"));
        }
        other => panic!("{other:?}"),
    }
    // No labels and an empty key is an empty label set.
    assert_eq!(d.decode_labels(&[], &[]).unwrap(), Vec::<String>::new());
    // Failures are counted; an overflowing size sum is just a mismatch.
    let before = d.errors();
    let huge = [
        label("a", usize::MAX, vec![dec("uint")]),
        label("b", usize::MAX, vec![dec("uint")]),
    ];
    assert!(d.decode_labels(&huge, &[1]).is_err());
    assert_eq!(d.errors(), before + 1);
}

#[test]
fn decode_labels_cache_hits_and_stays_bounded() {
    let d = Decoders::with_options(DecoderOptions {
        cache_limit: 3,
        ..DecoderOptions::default()
    });
    let one = [label("single_u64", 8, vec![dec("uint")])];
    let two = [
        label("u32_one", 4, vec![dec("uint")]),
        label("u32_two", 4, vec![dec("uint")]),
    ];
    let key = [0xba, 0xbe, 0xba, 0xbe, 0xde, 0xad, 0xbe, 0xef];
    // Same key, different labels: separate entries.
    assert_eq!(d.decode_labels(&one, &key).unwrap().len(), 1);
    assert_eq!(d.decode_labels(&two, &key).unwrap().len(), 2);
    assert_eq!(d.cached_keys(), 2);
    assert_eq!(d.decode_labels(&one, &key).unwrap().len(), 1);
    assert_eq!(d.cached_keys(), 2);
    // Skips are cached too; failures are not.
    let skip = [label("s", 1, vec![dec("string"), regexp(&["^a$"])])];
    assert_eq!(d.decode_labels(&skip, b"b"), Err(DecodeError::Skip));
    assert_eq!(d.cached_keys(), 3);
    assert_eq!(d.decode_labels(&skip, b"b"), Err(DecodeError::Skip));
    let bad = [label("b", 3, vec![dec("uint")])];
    assert!(d.decode_labels(&bad, &[1, 2, 3]).is_err());
    assert_eq!(d.cached_keys(), 3);
    // Past the limit the cache starts over.
    for i in 0..100u64 {
        assert_eq!(d.decode_labels(&one, &ne64(i)).unwrap(), [i.to_string()]);
        assert!(d.cached_keys() <= 3);
    }
    // Cache disabled.
    let d = Decoders::with_options(DecoderOptions {
        cache_limit: 0,
        ..DecoderOptions::default()
    });
    assert_eq!(d.decode_labels(&one, &key).unwrap().len(), 1);
    assert_eq!(d.cached_keys(), 0);
}

#[test]
fn decode_labels_concurrently() {
    let d = Arc::new(Decoders::new());
    let labels = Arc::new(number_and_fruit(vec![
        dec("string"),
        regexp(&["^bananas$", "$is-banana-even-fruit$"]),
    ]));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (d, labels) = (d.clone(), labels.clone());
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    let mut key = ne32(i % 50 + t);
                    key.extend(zero_padded("bananas", 32));
                    let out = d.decode_labels(&labels, &key).unwrap();
                    assert_eq!(out, [(i % 50 + t).to_string(), "bananas".to_string()]);
                    let out = d.decode_labels_uncached(&labels, &key).unwrap();
                    assert_eq!(out[1], "bananas");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(d.errors(), 0);
}

fn fake_kallsyms_decoders(contents: &str) -> (Decoders, PathBuf) {
    let (_dir, path) = with_file("kallsyms", "kallsyms", contents);
    let d = Decoders::with_options(DecoderOptions {
        kallsyms: path.clone(),
        refresh_interval: Duration::ZERO,
        ..DecoderOptions::default()
    });
    (d, path)
}

#[test]
fn ksym_exact_addresses_from_fake_kallsyms() {
    let (d, _) =
        fake_kallsyms_decoders("ffffffeb19d90830 T pipe_lock\nffffffeb19d90870 T pipe_unlock\n");
    let ksym = |addr: u64| ok(&d, vec![dec("ksym")], &ne64(addr));
    assert_eq!(ksym(0xffffffeb19d90828), "unknown_addr:0xffffffeb19d90828");
    assert_eq!(ksym(0xffffffeb19d90830), "pipe_lock");
    assert_eq!(ksym(0xffffffeb19d90870), "pipe_unlock");
    assert_eq!(ksym(0xffffffeb19d90878), "unknown_addr:0xffffffeb19d90878");
    // Fewer than 8 bytes is an error; more uses the first 8.
    assert_eq!(
        failed_decoder(run(&d, vec![dec("ksym")], &[0x30, 0x08, 0xd9])),
        "ksym"
    );
    let mut long = ne64(0xffffffeb19d90830);
    long.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(ok(&d, vec![dec("ksym")], &long), "pipe_lock");
}

#[test]
fn ksym_missing_or_bad_kallsyms_is_an_error() {
    let d = Decoders::with_options(DecoderOptions {
        kallsyms: PathBuf::from("/nonexistent/kallsyms"),
        ..DecoderOptions::default()
    });
    assert_eq!(failed_decoder(run(&d, vec![dec("ksym")], &ne64(1))), "ksym");
    let (d, _) = fake_kallsyms_decoders("zzzz T nope\n");
    assert_eq!(
        failed_decoder(run(&d, vec![dec("kstack")], &ne64(1))),
        "kstack"
    );
}

#[test]
fn kstack_nearest_symbols_and_refresh() {
    let (d, path) = fake_kallsyms_decoders(
        "0000000000000004 T one\n0000000000000006 T two\n00000000000000aa T three\n",
    );
    let stack = |addrs: &[u64]| -> String {
        let key: Vec<u8> = addrs.iter().flat_map(|a| a.to_ne_bytes()).collect();
        ok(&d, vec![dec("kstack")], &key)
    };
    assert_eq!(stack(&[0, 0]), "");
    assert_eq!(stack(&[4, 5, 6, 0]), "one\none\ntwo");
    assert_eq!(stack(&[0xab, 0x10, 6, 0]), "three\ntwo\ntwo");
    assert_eq!(stack(&[1, 0xac, 1, 0]), "??\nthree\n??");
    // Frames after the first zero are ignored.
    assert_eq!(stack(&[4, 0, 6]), "one");
    // A symbol added later is found: an unresolved frame re-reads kallsyms.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("0000000000000002 T zero\n");
    std::fs::write(&path, text).unwrap();
    assert_eq!(stack(&[0xab, 3, 0]), "three\nzero");
    // A ragged tail (not a multiple of 8) is an error unless a zero frame
    // ends the stack first.
    assert_eq!(
        failed_decoder(run(&d, vec![dec("kstack")], &[4, 0, 0, 0, 0, 0, 0, 0, 1])),
        "kstack"
    );
    let mut ended = vec![0u8; 8];
    ended.push(1);
    assert_eq!(ok(&d, vec![dec("kstack")], &ended), "");
}

/// (address, symbol) of a text symbol in /proc/kallsyms, if addresses are
/// visible.
fn real_kernel_symbols() -> Option<Vec<(u64, String)>> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    let syms: Vec<(u64, String)> = text
        .lines()
        .filter_map(|l| {
            let mut p = l.split(' ');
            let addr = u64::from_str_radix(p.next()?, 16).ok()?;
            let kind = p.next()?;
            let sym = p.next()?;
            (kind == "T" && !sym.contains('\t')).then(|| (addr, sym.to_string()))
        })
        .collect();
    if syms.iter().all(|&(a, _)| a == 0) {
        eprintln!("skipping real-address checks: /proc/kallsyms shows zero addresses (kptr_restrict or no CAP_SYSLOG)");
        return None;
    }
    Some(syms)
}

#[test]
fn ksym_and_kstack_against_proc_kallsyms() {
    let Some(syms) = real_kernel_symbols() else {
        return;
    };
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let d = Decoders::new();
    // A symbol whose address no other symbol shares.
    let unique = syms
        .iter()
        .find(|(addr, sym)| {
            sym == "vfs_read"
                && text
                    .lines()
                    .filter(|l| l.starts_with(&format!("{addr:016x} ")))
                    .count()
                    == 1
        })
        .or_else(|| {
            syms.iter().find(|(addr, _)| {
                text.lines()
                    .filter(|l| l.starts_with(&format!("{addr:016x} ")))
                    .count()
                    == 1
            })
        })
        .expect("some symbol with a unique address");
    let (addr, sym) = unique;
    assert_eq!(ok(&d, vec![dec("ksym")], &ne64(*addr)), *sym);
    // Inside the function: ksym wants the exact address, kstack the nearest.
    assert_eq!(
        ok(&d, vec![dec("ksym")], &ne64(addr + 1)),
        format!("unknown_addr:0x{:x}", addr + 1)
    );
    let mut key = ne64(addr + 1);
    key.extend(ne64(*addr));
    key.extend(ne64(0));
    assert_eq!(ok(&d, vec![dec("kstack")], &key), format!("{sym}\n{sym}"));
}

#[test]
fn ifname_lo_and_unknown() {
    let d = Decoders::new();
    assert_eq!(ok(&d, vec![dec("ifname")], &ne32(1)), "lo");
    assert_eq!(ok(&d, vec![dec("ifname")], &ne32(1)), "lo");
    assert_eq!(ok(&d, vec![dec("ifname")], &ne32(0)), "unknown:0");
    assert_eq!(
        ok(&d, vec![dec("ifname")], &ne32(2734686214)),
        "unknown:2734686214"
    );
    // 8-byte field: the first 4 bytes.
    assert_eq!(ok(&d, vec![dec("ifname")], &ne64(1)), "lo");
    assert_eq!(
        failed_decoder(run(&d, vec![dec("ifname")], &[1, 0])),
        "ifname"
    );
}

#[test]
fn majorminor_from_partitions() {
    let (_dir, path) = with_file(
        "partitions",
        "partitions",
        "major minor  #blocks  name\n\n   8        0  268435456 sda\n   8       16  268435456 sdb\n 259      300  1000 nvme0n1p9\n",
    );
    let d = Decoders::with_options(DecoderOptions {
        partitions: path,
        ..DecoderOptions::default()
    });
    let mm = |b: [u8; 4]| ok(&d, vec![dec("majorminor")], &b);
    // new_encode_dev(MKDEV(8, 0)) and (8, 16), little-endian.
    assert_eq!(mm([0x00, 0x08, 0x00, 0x00]), "sda");
    assert_eq!(mm([0x10, 0x08, 0x00, 0x00]), "sdb");
    assert_eq!(mm([0x10, 0x88, 0x00, 0x00]), "unknown:136:16");
    // Minor above 255: its high bits sit above the major.
    let dev: u32 = (300 & 0xff) | (259 << 8) | ((300 & !0xff) << 12);
    assert_eq!(ok(&d, vec![dec("majorminor")], &ne32(dev)), "nvme0n1p9");
    assert_eq!(
        failed_decoder(run(&d, vec![dec("majorminor")], &[1])),
        "majorminor"
    );

    let missing = Decoders::with_options(DecoderOptions {
        partitions: PathBuf::from("/nonexistent/partitions"),
        ..DecoderOptions::default()
    });
    assert_eq!(
        failed_decoder(run(&missing, vec![dec("majorminor")], &ne32(0x800))),
        "majorminor"
    );
}

#[test]
fn majorminor_against_proc_partitions() {
    let text = std::fs::read_to_string("/proc/partitions").unwrap_or_default();
    let Some((major, minor, name)) = text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((
            f.first()?.parse::<u32>().ok()?,
            f.get(1)?.parse::<u32>().ok()?,
            f.get(3)?.to_string(),
        ))
    }) else {
        eprintln!("skipping: /proc/partitions lists no devices");
        return;
    };
    let dev = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
    assert_eq!(
        ok(&Decoders::new(), vec![dec("majorminor")], &ne32(dev)),
        name
    );
}

#[test]
fn cgroup_fake_tree() {
    let root = scratch_dir("cgroup");
    std::fs::create_dir_all(root.join("system.slice/foo.service")).unwrap();
    let d = Decoders::with_options(DecoderOptions {
        cgroup_root: root.clone(),
        refresh_interval: Duration::ZERO,
        ..DecoderOptions::default()
    });
    let cg = |path: &Path| -> String {
        let ino = std::fs::metadata(path).unwrap().ino();
        ok(&d, vec![dec("uint"), dec("cgroup")], &ne64(ino))
    };
    let foo = root.join("system.slice/foo.service");
    assert_eq!(cg(&root), root.to_str().unwrap());
    assert_eq!(cg(&foo), foo.to_str().unwrap());
    // Created after the first walk: found by the walk a miss triggers.
    let bar = root.join("bar.slice");
    std::fs::create_dir(&bar).unwrap();
    let bar_ino = std::fs::metadata(&bar).unwrap().ino();
    assert_eq!(cg(&bar), bar.to_str().unwrap());
    // Removed: still resolves to where it was.
    std::fs::remove_dir(&bar).unwrap();
    assert_eq!(
        ok(&d, vec![dec("uint"), dec("cgroup")], &ne64(bar_ino)),
        bar.to_str().unwrap()
    );
    assert_eq!(ok(&d, vec![dec("cgroup")], b"0"), "unknown_cgroup_id:0");
    assert_eq!(ok(&d, vec![dec("cgroup")], b"-5"), "unknown_cgroup_id:-5");
    assert_eq!(
        failed_decoder(run(&d, vec![dec("cgroup")], &ne64(1))),
        "cgroup"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn cgroup_unknown_and_rate_limited() {
    let root = scratch_dir("cgroup-rl");
    let d = Decoders::with_options(DecoderOptions {
        cgroup_root: root.clone(),
        refresh_interval: Duration::from_secs(3600),
        ..DecoderOptions::default()
    });
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino().to_string();
    assert_eq!(
        ok(&d, vec![dec("cgroup")], ino(&root).as_bytes()),
        root.to_str().unwrap()
    );
    // Within the refresh interval a miss does not walk again.
    let late = root.join("late");
    std::fs::create_dir(&late).unwrap();
    let late_ino = ino(&late);
    assert_eq!(
        ok(&d, vec![dec("cgroup")], late_ino.as_bytes()),
        format!("unknown_cgroup_id:{late_ino}")
    );
    let _ = std::fs::remove_dir_all(&root);

    let missing = Decoders::with_options(DecoderOptions {
        cgroup_root: PathBuf::from("/nonexistent/cgroup"),
        ..DecoderOptions::default()
    });
    assert_eq!(
        failed_decoder(run(&missing, vec![dec("cgroup")], b"1")),
        "cgroup"
    );
}

/// The cgroup decoder resolves ids of the cgroup v2 hierarchy (what
/// `bpf_get_current_cgroup_id` returns): this process's own v2 cgroup, from
/// the `0::` line of /proc/self/cgroup, decodes to its directory exactly,
/// also on hybrid hosts whose v1 directories would share inode numbers.
#[test]
fn cgroup_of_this_process() {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(own) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) else {
        eprintln!("skipping: this process is in no cgroup v2 hierarchy");
        return;
    };
    let root = bpfkit_exporter::decoders::cgroup2_root();
    let dir = root.join(own.trim_start_matches('/'));
    let dir = PathBuf::from(dir.to_string_lossy().trim_end_matches('/'));
    let Ok(meta) = std::fs::metadata(&dir) else {
        eprintln!("skipping: {} is not visible here", dir.display());
        return;
    };
    let d = Decoders::new();
    let path = ok(&d, vec![dec("uint"), dec("cgroup")], &ne64(meta.ino()));
    assert_eq!(path, dir.to_string_lossy());
}

const PCI_IDS: &str = "\
# test pci.ids
8086  Intel Corporation
\t1000  82542 Gigabit Ethernet Controller (Fiber)
\t\t0e11 b0df  NC6132 Gigabit Ethernet Adapter (1000-SX)
10de  NVIDIA Corporation
\t2704  AD103 [GeForce RTX 4080]
001c  PEAK-System Technik GmbH
\t0001  PCAN-PCI CAN-Bus controller
C 00  Unclassified device
\t00  Non-VGA unclassified device
\t01  VGA compatible unclassified device
C 01  Mass storage controller
\t08  Non-Volatile memory controller
\t\t02  NVM Express
C 02  Network controller
\t00  Ethernet controller
C 0c  Serial bus controller
\t03  USB controller
";

#[test]
fn pci_names_from_pci_ids() {
    let (_dir, path) = with_file("pci", "pci.ids", PCI_IDS);
    let d = Decoders::with_options(DecoderOptions {
        pci_ids: vec![PathBuf::from("/nonexistent/pci.ids"), path],
        ..DecoderOptions::default()
    });
    let pci = |decoder: &str, n: &str| ok(&d, vec![dec(decoder)], n.as_bytes());
    assert_eq!(pci("pci_vendor", "32902"), "Intel Corporation");
    assert_eq!(pci("pci_vendor", "4318"), "NVIDIA Corporation");
    assert_eq!(pci("pci_vendor", "48879"), "unknown pci vendor: 0xbeef");
    // %02x, as in ebpf_exporter: vendor ids below 0x1000 are not found.
    assert_eq!(pci("pci_vendor", "28"), "unknown pci vendor: 0x1c");
    assert_eq!(
        pci("pci_device", "2156269568"),
        "82542 Gigabit Ethernet Controller (Fiber)"
    );
    assert_eq!(pci("pci_device", "282994436"), "AD103 [GeForce RTX 4080]");
    assert_eq!(
        pci("pci_device", "3735928559"),
        "unknown pci device: 0xdeadbeef"
    );
    assert_eq!(pci("pci_class", "1"), "Mass storage controller");
    assert_eq!(pci("pci_class", "2"), "Network controller");
    assert_eq!(pci("pci_class", "12"), "Serial bus controller");
    assert_eq!(pci("pci_class", "253"), "unknown pci class: 0xfd");
    assert_eq!(pci("pci_subclass", "264"), "Non-Volatile memory controller");
    assert_eq!(pci("pci_subclass", "512"), "Ethernet controller");
    assert_eq!(pci("pci_subclass", "3075"), "USB controller");
    assert_eq!(
        pci("pci_subclass", "1"),
        "VGA compatible unclassified device"
    );
    assert_eq!(pci("pci_subclass", "64768"), "unknown pci class: 0xfd");
    assert_eq!(
        pci("pci_subclass", "267"),
        "unknown pci subclass: 0x0b (class 0x01)"
    );
    assert_eq!(
        pci("pci_subclass", "3"),
        "unknown pci subclass: 0x03 (class 0x00)"
    );
    // Chained after uint (the usual config).
    assert_eq!(
        ok(
            &d,
            vec![dec("uint"), dec("pci_vendor")],
            &32902u16.to_ne_bytes()
        ),
        "Intel Corporation"
    );
    // Not a number.
    assert_eq!(
        failed_decoder(run(&d, vec![dec("pci_vendor")], b"x")),
        "pci_vendor"
    );
    // Negative numbers format as Go does.
    assert_eq!(pci("pci_class", "-5"), "unknown pci class: 0x-5");
}

#[test]
fn pci_without_pci_ids() {
    let d = Decoders::with_options(DecoderOptions {
        pci_ids: vec![PathBuf::from("/nonexistent/pci.ids")],
        ..DecoderOptions::default()
    });
    for decoder in ["pci_vendor", "pci_device", "pci_class", "pci_subclass"] {
        // The database check comes first, so even non-numbers decode.
        for input in [&b"32902"[..], b"x"] {
            assert_eq!(ok(&d, vec![dec(decoder)], input), "missing pci.ids db");
        }
    }
    // The default paths: whichever the system has.
    let present = DecoderOptions::default().pci_ids.iter().any(|p| p.exists());
    let out = ok(&Decoders::new(), vec![dec("pci_class")], b"2");
    if present {
        assert_eq!(out, "Network controller");
    } else {
        eprintln!("no system pci.ids: decoders fall back to \"missing pci.ids db\"");
        assert_eq!(out, "missing pci.ids db");
    }
}

#[test]
fn no_panics_on_arbitrary_input() {
    let (_dir, kallsyms) = with_file("fuzz", "kallsyms", "0000000000000004 T one\n");
    let (_dir2, pci) = with_file("fuzz", "pci.ids", PCI_IDS);
    let d = Decoders::with_options(DecoderOptions {
        kallsyms,
        pci_ids: vec![pci],
        cgroup_root: scratch_dir("fuzz-cg"),
        ..DecoderOptions::default()
    });
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let texts: [&[u8]; 8] = [
        b"",
        b"-",
        b"+",
        b"99999999999999999999999",
        b"-9223372036854775808",
        b"12",
        b"\xff\xfe",
        b"\x3f\x00",
    ];
    for name in DECODER_NAMES {
        let spec = if *name == "regexp" {
            regexp(&["^(a)?", "(x)(y)"])
        } else if *name == "static_map" {
            static_map(&[("1", "one")], false)
        } else {
            dec(name)
        };
        for len in 1..=40usize {
            let input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = run(&d, vec![spec.clone()], &input);
            let _ = run(&d, vec![dec("hex"), spec.clone()], &input);
        }
        for t in texts {
            let l = label("t", 1, vec![spec.clone()]);
            let _ = d.decode_label(&l, t);
        }
    }
}
