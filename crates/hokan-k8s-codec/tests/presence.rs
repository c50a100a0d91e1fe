//! Go's JSON presence rules on hand-built protobuf: the fixtures set every
//! field, so omitempty, nil pointers, nil slices and zero structs are checked here.

use serde_json::json;

/// A length-delimited field.
fn msg(n: u32, body: &[u8]) -> Vec<u8> {
    let mut v = varint(u64::from(n) << 3 | 2);
    v.extend(varint(body.len() as u64));
    v.extend_from_slice(body);
    v
}

fn int(n: u32, x: u64) -> Vec<u8> {
    let mut v = varint(u64::from(n) << 3);
    v.extend(varint(x));
    v
}

fn varint(mut x: u64) -> Vec<u8> {
    let mut v = Vec::new();
    loop {
        if x < 0x80 {
            v.push(x as u8);
            return v;
        }
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let tm = [msg(1, api_version.as_bytes()), msg(2, kind.as_bytes())].concat();
    [
        b"k8s\0".as_slice(),
        &msg(1, &tm),
        &msg(2, raw),
        &msg(3, b""),
        &msg(4, b""),
    ]
    .concat()
}

#[test]
fn zero_values_follow_go_struct_tags() {
    // What Go's generated marshaller writes for a Deployment with little set:
    // non-pointer scalars and structs always, nil pointers and slices never.
    let meta = [msg(1, b"d"), msg(8, b"")].concat();
    let template = [msg(1, b""), msg(2, b"")].concat();
    let spec = [
        int(1, 0),
        msg(3, &template),
        msg(4, b""),
        int(5, 0),
        int(7, 0),
    ]
    .concat();
    let raw = [msg(1, &meta), msg(2, &spec), msg(3, b"")].concat();
    let got = hokan_k8s_codec::decode(&envelope("apps/v1", "Deployment", &raw))
        .unwrap()
        .object;
    let want = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        // creationTimestamp is `omitempty,omitzero`: the zero time is left out.
        "metadata": {"name": "d"},
        // replicas is a pointer set to 0 (printed); selector a nil pointer without
        // omitempty (null); minReadySeconds/paused zero with omitempty (left out);
        // strategy and status structs (never left out); containers a nil slice (null).
        "spec": {"replicas": 0, "selector": null, "template": {"metadata": {}, "spec": {"containers": null}}, "strategy": {}},
        "status": {}
    });
    assert_eq!(got, want);
}

#[test]
fn maps_bytes_and_special_types() {
    let entry = [msg(1, b"k"), msg(2, b"\x00\xff")].concat();
    let empty_entry = msg(1, b"e");
    let raw = [
        msg(1, &msg(1, b"s")),
        msg(2, &entry),
        msg(2, &empty_entry),
        msg(3, b""),
    ]
    .concat();
    let got = hokan_k8s_codec::decode(&envelope("v1", "Secret", &raw))
        .unwrap()
        .object;
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "AP8=", "e": ""}})
    );

    // A Service port: targetPort as a string, then absent (a zero IntOrString is 0);
    // a quantity in a LimitRange printed canonically.
    let port = |tp: Option<Vec<u8>>| {
        [
            vec![int(3, 80)],
            tp.map(|t| msg(4, &t)).into_iter().collect(),
        ]
        .concat()
        .concat()
    };
    let ports = [
        msg(1, &port(Some([int(1, 1), msg(3, b"http")].concat()))),
        msg(1, &port(None)),
    ]
    .concat();
    let raw = [msg(1, &msg(1, b"svc")), msg(2, &ports)].concat();
    let got = hokan_k8s_codec::decode(&envelope("v1", "Service", &raw))
        .unwrap()
        .object;
    assert_eq!(
        got["spec"]["ports"],
        json!([{"port": 80, "targetPort": "http"}, {"port": 80, "targetPort": 0}])
    );
    assert_eq!(got["status"], json!({"loadBalancer": {}}));

    let q = |s: &str| msg(1, s.as_bytes());
    let item = [
        msg(1, b"Container"),
        msg(2, &[msg(1, b"cpu"), msg(2, &q("1000m"))].concat()),
    ]
    .concat();
    let raw = [msg(1, &msg(1, b"lr")), msg(2, &msg(1, &item))].concat();
    let got = hokan_k8s_codec::decode(&envelope("v1", "LimitRange", &raw))
        .unwrap()
        .object;
    assert_eq!(got["spec"]["limits"][0]["max"], json!({"cpu": "1"}));

    let bad = [
        msg(1, &msg(1, b"lr")),
        msg(
            2,
            &msg(
                1,
                &[
                    msg(1, b"Pod"),
                    msg(2, &[msg(1, b"cpu"), msg(2, &q("1x"))].concat()),
                ]
                .concat(),
            ),
        ),
    ]
    .concat();
    let err = hokan_k8s_codec::decode(&envelope("v1", "LimitRange", &bad)).unwrap_err();
    assert!(err.to_string().contains("spec.limits.max"), "{err}");
}

#[test]
fn json_values_and_unknown_kinds() {
    let cr = br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":3}}"#;
    let o = hokan_k8s_codec::decode(cr).unwrap();
    assert_eq!(
        (o.api_version.as_str(), o.kind.as_str(), o.encoding),
        ("example.com/v1", "Widget", hokan_k8s_codec::Encoding::Json)
    );
    assert_eq!(o.object["spec"]["size"], 3);
    let err = hokan_k8s_codec::decode(&envelope("example.com/v1", "Widget", b"")).unwrap_err();
    assert!(
        matches!(err, hokan_k8s_codec::Error::UnknownKind { .. }),
        "{err}"
    );
    let err = hokan_k8s_codec::decode(b"12345").unwrap_err();
    assert!(err.to_string().contains("not a Kubernetes object"), "{err}");
}
