//! Decodes one etcd value from a file and prints it as JSON.
//!
//! `cargo run -p hokan-k8s-codec --example decode_value -- FILE`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: decode_value FILE")?;
    let obj = hokan_k8s_codec::decode(&std::fs::read(path)?)?;
    println!("{}", serde_json::to_string_pretty(&obj.object)?);
    Ok(())
}
