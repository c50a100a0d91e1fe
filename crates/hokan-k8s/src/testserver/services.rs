//! Services: cluster IPs and node ports allocated, kept and released as
//! the real server's allocators do; Secrets' `stringData` merged into
//! `data` on every write, as the real server's conversion does.

use serde_json::{Value, json};

use super::state::{ApiError, State};
use crate::discovery::ResourceInfo;

impl State {
    /// Cluster IPs and node ports: kept from the old object on update when
    /// left empty, allocated when absent, refused when taken (422).
    pub(super) fn allocate_service(
        &mut self,
        r: &ResourceInfo,
        name: &str,
        body: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let spec = &mut body["spec"];
        let old_ip = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if spec.get("type").and_then(Value::as_str) != Some("ExternalName") {
            match (ip.as_str(), &old_ip) {
                ("", Some(old_ip)) => spec["clusterIP"] = json!(old_ip),
                ("", None) => {
                    let ip = (10..)
                        .map(|n: u32| format!("10.96.{}.{}", n / 250, n % 250 + 1))
                        .find(|ip| !self.cluster_ips.contains(ip))
                        .unwrap_or_default();
                    self.cluster_ips.insert(ip.clone());
                    spec["clusterIP"] = json!(ip);
                }
                ("None", _) => {}
                (ip, Some(old_ip)) if ip != old_ip => {
                    return Err(ApiError::invalid(
                        r,
                        name,
                        "spec.clusterIPs[0]",
                        format!("Invalid value: {ip:?}: may not change once set"),
                    ));
                }
                (_, Some(_)) => {}
                (ip, None) => {
                    if !self.cluster_ips.insert(ip.to_string()) {
                        return Err(ApiError::invalid(
                            r,
                            name,
                            "spec.clusterIPs",
                            format!(
                                "Invalid value: [\"{ip}\"]: failed to allocate IP {ip}: provided IP is already allocated"
                            ),
                        ));
                    }
                }
            }
            let ip = spec["clusterIP"].clone();
            spec["clusterIPs"] = json!([ip]);
        }
        let wants_ports = matches!(
            spec.get("type").and_then(Value::as_str),
            Some("NodePort" | "LoadBalancer")
        );
        let old_ports: Vec<u64> = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p["nodePort"].as_u64()).collect())
            .unwrap_or_default();
        let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (i, port) in ports.iter_mut().enumerate() {
            match port.get("nodePort").and_then(Value::as_u64) {
                Some(p) if old_ports.contains(&p) => {}
                // A node port outside the range, or taken, is refused; a
                // free one is taken.
                Some(p) if !(30000..=32767).contains(&p) || !self.node_ports.insert(p) => {
                    return Err(ApiError::invalid(
                        r,
                        name,
                        &format!("spec.ports[{i}].nodePort"),
                        format!("Invalid value: {p}: provided port is already allocated"),
                    ));
                }
                Some(_) => {}
                None if wants_ports => {
                    let p = old_ports.get(i).copied().unwrap_or_else(|| {
                        (30000..=32767)
                            .find(|p| !self.node_ports.contains(p))
                            .unwrap_or(30000)
                    });
                    self.node_ports.insert(p);
                    port["nodePort"] = json!(p);
                }
                None => {}
            }
        }
        Ok(())
    }

    pub(super) fn note_service(&mut self, body: &Value) {
        if let Some(ip) = body.pointer("/spec/clusterIP").and_then(Value::as_str) {
            self.cluster_ips.insert(ip.to_string());
        }
        for p in body
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = p["nodePort"].as_u64() {
                self.node_ports.insert(n);
            }
        }
    }

    pub(super) fn release_service(&mut self, body: &Value) {
        if let Some(ip) = body.pointer("/spec/clusterIP").and_then(Value::as_str) {
            self.cluster_ips.remove(ip);
        }
        for p in body
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = p["nodePort"].as_u64() {
                self.node_ports.remove(&n);
            }
        }
    }
}

/// A Secret's `stringData` merged into `data` (base64; its keys win over
/// `data`'s) and dropped: the server never stores or serves it.
pub(super) fn merge_string_data(body: &mut Value) {
    use base64::Engine;
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = obj.remove("stringData") else {
        return;
    };
    let data = obj.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

#[cfg(test)]
mod string_data {
    use super::*;

    #[test]
    fn string_data_becomes_data_and_wins() {
        let mut s = json!({"kind": "Secret", "data": {"a": "eA==", "b": "eQ=="},
                            "stringData": {"b": "pw", "c": ""}});
        merge_string_data(&mut s);
        assert_eq!(
            s,
            json!({"kind": "Secret", "data": {"a": "eA==", "b": "cHc=", "c": ""}})
        );
        let mut plain = json!({"kind": "Secret", "data": {"a": "eA=="}});
        merge_string_data(&mut plain);
        assert_eq!(plain, json!({"kind": "Secret", "data": {"a": "eA=="}}));
    }
}
