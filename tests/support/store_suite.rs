//! One conformance suite every store passes (file, HTTP with WebDAV, S3, GCS): reads of
//! missing objects, round trips of awkward keys and payloads, content encodings kept, ranges,
//! ranges past the end, reads conditioned on a generation, the size limit, listings by prefix
//! as cloud-files lists (or their refusal), deletes.

use cloudvolume::store::{ContentEncoding, GetOptions, Got, RangeRead, Store};
use cloudvolume::ErrorKind;

/// What a store can do beyond the basics.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Objects keep the content encoding they were written with (not plain WebDAV servers).
    pub encodings: bool,
    /// Reads report a generation, and a read conditioned on an old one is stale.
    pub generations: bool,
    /// Keys can be listed by prefix (`first_under`; not plain HTTP, which must refuse it as
    /// `Unsupported`).
    pub listing: bool,
}

/// Run the suite on `store`, whose keys live under `prefix` (a fresh, empty place); `name`
/// says which store failed.
pub fn conformance(store: &dyn Store, prefix: &str, name: &str, caps: Capabilities) {
    let key = |k: &str| format!("{prefix}/{k}");
    let what = |s: &str| format!("{name}: {s}");

    // Missing objects.
    assert!(store.get(&key("nothing")).unwrap().is_none(), "{}", what("missing get"));
    assert!(!store.exists(&key("nothing")).unwrap(), "{}", what("missing exists"));
    assert!(
        matches!(store.get_range_if(&key("nothing"), 0, 4, None).unwrap(), RangeRead::Missing),
        "{}",
        what("missing range")
    );
    // Deleting what is not there is no error.
    store.delete(&key("nothing")).unwrap_or_else(|e| panic!("{}: {e}", what("delete missing")));

    // Round trips: binary payloads (every byte value), empty ones, nested keys.
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    for (k, bytes) in [("a/b/c/blob", payload.clone()), ("empty", Vec::new()), ("1-2_3-4_5-6", b"chunk".to_vec())] {
        store
            .put(&key(k), &bytes, ContentEncoding::Identity, "application/octet-stream")
            .unwrap_or_else(|e| panic!("{}: {e}", what(k)));
        let obj =
            store.get(&key(k)).unwrap().unwrap_or_else(|| panic!("{}", what(&format!("{k} written but missing"))));
        assert_eq!(obj.bytes, bytes, "{}", what(k));
        assert_eq!(obj.encoding, ContentEncoding::Identity, "{}", what(k));
        assert!(store.exists(&key(k)).unwrap(), "{}", what(k));
    }
    // Replacing an object replaces it whole.
    store.put(&key("1-2_3-4_5-6"), b"new", ContentEncoding::Identity, "application/octet-stream").unwrap();
    assert_eq!(store.get(&key("1-2_3-4_5-6")).unwrap().unwrap().bytes, b"new", "{}", what("replace"));

    // Listings: the keys as bare string prefixes, as cloud-files lists them.
    let first = |p: &str| store.first_under(&key(p));
    if caps.listing {
        let first = |p: &str| first(p).unwrap_or_else(|e| panic!("{}: {e}", what(&format!("first_under({p:?})"))));
        let blob = Some(key("a/b/c/blob"));
        for p in ["a", "a/", "a/b", "a/b/", "a/b/c/bl", "a/b/c/blob", "a/./b/../b/c"] {
            assert_eq!(first(p), blob, "{}", what(&format!("first_under({p:?})")));
        }
        for p in ["nothing", "a/b/c/blob/", "a/bx", "A", "b"] {
            assert_eq!(first(p), None, "{}", what(&format!("first_under({p:?})")));
        }
        // A partial name matches; an empty object is an object.
        assert_eq!(first("1-2"), Some(key("1-2_3-4_5-6")), "{}", what("first_under(partial name)"));
        assert_eq!(first("emp"), Some(key("empty")), "{}", what("first_under(empty object)"));
        let any = first("").unwrap_or_else(|| panic!("{}", what("first_under(\"\") found nothing")));
        assert!(any.starts_with(&format!("{prefix}/")), "{}", what(&format!("first_under(\"\") = {any}")));
    } else {
        let e = first("a").expect_err("a store without listings listed");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{}: {e}", what("first_under"));
        assert!(e.message().contains("listing"), "{}: {e}", what("first_under"));
    }

    // Content encodings are kept as written.
    if caps.encodings {
        let gz = cloudvolume::codec::compression::gzip(&payload, 6);
        store.put(&key("gz"), &gz, ContentEncoding::Gzip, "application/octet-stream").unwrap();
        let obj = store.get(&key("gz")).unwrap().unwrap();
        assert_eq!(obj.encoding, ContentEncoding::Gzip, "{}", what("gzip kept"));
        assert_eq!(obj.bytes, gz, "{}", what("gzip bytes as stored"));
    }

    // Ranges, and ranges past the end.
    let blob = key("a/b/c/blob");
    assert_eq!(store.get_range(&blob, 1000, 1010).unwrap().unwrap(), payload[1000..1010], "{}", what("range"));
    assert_eq!(store.get_range(&blob, 0, payload.len() as u64).unwrap().unwrap(), payload, "{}", what("whole range"));
    let e = store.get_range(&blob, payload.len() as u64 - 4, payload.len() as u64 + 4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{}: {e}", what("range past the end"));

    // The size limit of whole reads: over it is refused unread, at it is read.
    let mut buf = Vec::new();
    let limit = GetOptions { max_len: Some(payload.len() as u64 - 1), ..GetOptions::default() };
    let e = store.get_with(&blob, &limit, &mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{}: {e}", what("over max_len"));
    let exact = GetOptions { max_len: Some(payload.len() as u64), ..GetOptions::default() };
    assert!(matches!(store.get_with(&blob, &exact, &mut buf).unwrap(), Got::Found { .. }), "{}", what("at max_len"));
    assert_eq!(buf, payload, "{}", what("at max_len"));

    // Reads conditioned on a generation.
    if caps.generations {
        let g = match store.get_range_if(&blob, 0, 16, None).unwrap() {
            RangeRead::Data(b, Some(g)) => {
                assert_eq!(b, payload[..16], "{}", what("range with generation"));
                g
            }
            other => panic!("{}: {other:?}", what("a range read reports no generation")),
        };
        assert!(
            matches!(store.get_range_if(&blob, 16, 32, Some(&g)).unwrap(), RangeRead::Data(..)),
            "{}",
            what("same generation")
        );
        // Rewritten: the old generation is stale (mtime granularity: a different size).
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.put(&blob, &payload[..payload.len() - 1], ContentEncoding::Identity, "application/octet-stream").unwrap();
        assert!(
            matches!(store.get_range_if(&blob, 16, 32, Some(&g)).unwrap(), RangeRead::Stale),
            "{}",
            what("rewritten: stale")
        );
    }

    // Deletes.
    for k in ["a/b/c/blob", "empty", "1-2_3-4_5-6", "gz"] {
        store.delete(&key(k)).unwrap_or_else(|e| panic!("{}: {e}", what(&format!("delete {k}"))));
        assert!(store.get(&key(k)).unwrap().is_none(), "{}", what(&format!("{k} deleted")));
        assert!(!store.exists(&key(k)).unwrap(), "{}", what(&format!("{k} deleted")));
    }
    // Nothing left to list (a file store's directories are no objects).
    if caps.listing {
        for p in ["", "a", "a/b/c/"] {
            assert_eq!(first(p).unwrap(), None, "{}", what(&format!("first_under({p:?}) after the deletes")));
        }
    }
}
