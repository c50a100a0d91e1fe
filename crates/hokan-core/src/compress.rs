//! zstd compression with a raw fallback.
//!
//! An encoded payload is `codec (u8) || body`: codec 0 is the data as is,
//! codec 1 is one zstd frame that declares its content size. Data that does
//! not shrink is stored raw, so incompressible chunks (media, archives,
//! already-encrypted files) cost one byte, not a zstd frame's overhead.

use std::cell::RefCell;

use crate::error::{Error, Result};

/// Codec byte: the body is the data itself.
pub const CODEC_RAW: u8 = 0;
/// Codec byte: the body is a zstd frame with its content size.
pub const CODEC_ZSTD: u8 = 1;

/// Largest plaintext a payload may declare (1 GiB). Chunks are at most 16 MiB;
/// the limit is for tree blobs of huge directories, and stops a forged
/// frame header from asking for unbounded memory.
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

/// How blobs are compressed: a repository setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Store everything raw.
    Off,
    /// zstd at this level (negative levels trade ratio for speed).
    Zstd(i32),
}

impl Default for Compression {
    /// zstd level 3: zstd's own default, and what restic's `auto` amounts to.
    fn default() -> Self {
        Compression::Zstd(3)
    }
}

impl Compression {
    /// zstd at `level`, checked against the range the linked zstd accepts;
    /// 0 means off.
    pub fn zstd(level: i32) -> Result<Self> {
        if level == 0 {
            return Ok(Compression::Off);
        }
        let range = zstd::compression_level_range();
        if !range.contains(&level) {
            return Err(Error::invalid(
                "compression level",
                format!(
                    "{level} is outside zstd's range {}..={} (0 turns compression off)",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(Compression::Zstd(level))
    }

    /// The level as stored in configuration: 0 for off.
    pub fn level(self) -> i32 {
        match self {
            Compression::Off => 0,
            Compression::Zstd(l) => l,
        }
    }
}

thread_local! {
    // A zstd context costs hundreds of kilobytes to set up; each rayon worker
    // keeps one and reuses it for every chunk it compresses.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Appends `codec || body` for `data` to `out`.
pub fn encode_into(out: &mut Vec<u8>, data: &[u8], compression: Compression) -> Result<()> {
    let start = out.len();
    if let Compression::Zstd(level) = compression {
        out.push(CODEC_ZSTD);
        // Never let the frame grow past the raw form: reserve exactly what
        // raw storage would take and fall back if zstd needs more.
        out.reserve(data.len());
        let fitted = COMPRESSOR.with(|cell| -> Result<bool> {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().map(|(l, _)| *l) != Some(level) {
                let c = zstd::bulk::Compressor::new(level)
                    .map_err(|e| Error::io("creating a zstd compressor", e))?;
                *slot = Some((level, c));
            }
            let (_, c) = slot.as_mut().expect("set above");
            // A frame abandoned for lack of room leaves the session open.
            c.context_mut()
                .reset(zstd::zstd_safe::ResetDirective::SessionOnly)
                .map_err(|code| {
                    Error::io(
                        "resetting zstd",
                        std::io::Error::other(zstd::zstd_safe::get_error_name(code)),
                    )
                })?;
            c.set_pledged_src_size(Some(data.len() as u64))
                .map_err(|e| Error::io("configuring zstd", e))?;
            // Write into the spare capacity after the codec byte, bounded to
            // data.len() bytes: a frame that does not fit did not shrink.
            let body_start = out.len();
            let mut spare = SpareBuf {
                vec: &mut *out,
                start: body_start,
                len: data.len(),
            };
            let ok = c.compress_to_buffer(data, &mut spare).is_ok();
            Ok(ok && out.len() - body_start < data.len())
        })?;
        if fitted {
            return Ok(());
        }
        out.truncate(start);
    }
    out.push(CODEC_RAW);
    out.extend_from_slice(data);
    Ok(())
}

/// The spare capacity of a `Vec` from `start`, at most `len` bytes, viewed
/// as a zstd output buffer.
struct SpareBuf<'a> {
    vec: &'a mut Vec<u8>,
    start: usize,
    len: usize,
}

// SAFETY: `as_mut_ptr`/`capacity` describe spare capacity the vector owns
// (`encode_into` reserved `len` bytes past `start == vec.len()`), and
// `filled_until` only extends the length over bytes zstd reports written.
unsafe impl zstd::zstd_safe::WriteBuf for SpareBuf<'_> {
    fn as_slice(&self) -> &[u8] {
        &self.vec[self.start..]
    }
    fn capacity(&self) -> usize {
        self.len.min(self.vec.capacity() - self.start)
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: `start <= capacity`, so the offset stays in the allocation.
        unsafe { self.vec.as_mut_ptr().add(self.start) }
    }
    unsafe fn filled_until(&mut self, n: usize) {
        // SAFETY: zstd initialised `n <= capacity()` bytes from `start`.
        unsafe { self.vec.set_len(self.start + n) }
    }
}

/// Encodes `data` into a new payload.
pub fn encode(data: &[u8], compression: Compression) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + 1);
    encode_into(&mut out, data, compression)?;
    Ok(out)
}

/// Why a payload could not be decoded. Payloads are authenticated before
/// they are decoded, so any of these means a bug or a forged key, and the
/// caller reports it as corruption of the object it read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Zero-length payload: no codec byte.
    #[error("empty payload")]
    Empty,
    /// A codec byte this build does not know.
    #[error("unknown codec {0}")]
    UnknownCodec(u8),
    /// The zstd frame does not declare its size, or declares too much.
    #[error("zstd frame size {0}")]
    BadFrameSize(String),
    /// zstd rejected the frame.
    #[error("zstd: {0}")]
    Zstd(String),
}

/// Decodes a payload in place of its owner.
pub fn decode(mut payload: Vec<u8>) -> Result<Vec<u8>, DecodeError> {
    match payload.first().copied() {
        None => Err(DecodeError::Empty),
        Some(CODEC_RAW) => {
            payload.remove(0);
            Ok(payload)
        }
        Some(CODEC_ZSTD) => decode_zstd(&payload[1..]),
        Some(other) => Err(DecodeError::UnknownCodec(other)),
    }
}

fn decode_zstd(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let size = match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(n)) if n <= MAX_PAYLOAD_LEN as u64 => n as usize,
        Ok(Some(n)) => return Err(DecodeError::BadFrameSize(format!("{n} exceeds the limit"))),
        Ok(None) => return Err(DecodeError::BadFrameSize("not declared".into())),
        Err(_) => return Err(DecodeError::BadFrameSize("unreadable frame header".into())),
    };
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new().map_err(|e| DecodeError::Zstd(e.to_string()))?,
            );
        }
        let d = slot.as_mut().expect("set above");
        let out = d
            .decompress(body, size)
            .map_err(|e| DecodeError::Zstd(e.to_string()))?;
        if out.len() != size {
            return Err(DecodeError::BadFrameSize(format!(
                "declared {size}, decoded {}",
                out.len()
            )));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_data_uses_zstd_and_shrinks() {
        let data = vec![b'a'; 100_000];
        let p = encode(&data, Compression::default()).unwrap();
        assert_eq!(p[0], CODEC_ZSTD);
        assert!(p.len() < 1000);
        assert_eq!(decode(p).unwrap(), data);
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut data = vec![0u8; 10_000];
        getrandom::fill(&mut data).unwrap();
        let p = encode(&data, Compression::default()).unwrap();
        assert_eq!(p[0], CODEC_RAW);
        assert_eq!(p.len(), data.len() + 1);
        assert_eq!(decode(p).unwrap(), data);
    }

    #[test]
    fn off_and_empty() {
        let p = encode(b"aaaaaaaaaaaaaaaaaaaaaaaaa", Compression::Off).unwrap();
        assert_eq!(p[0], CODEC_RAW);
        assert_eq!(
            decode(encode(b"", Compression::default()).unwrap()).unwrap(),
            b""
        );
        assert_eq!(decode(vec![]), Err(DecodeError::Empty));
        assert_eq!(decode(vec![9, 1]), Err(DecodeError::UnknownCodec(9)));
    }

    #[test]
    fn levels_are_checked() {
        assert_eq!(Compression::zstd(0).unwrap(), Compression::Off);
        assert!(Compression::zstd(23).is_err());
        assert_eq!(Compression::zstd(19).unwrap().level(), 19);
    }

    #[test]
    fn forged_frame_sizes_are_refused() {
        // A zstd frame claiming 2 GiB of content.
        let mut p = vec![CODEC_ZSTD];
        let big = zstd::bulk::compress(&[0u8; 16], 3).unwrap();
        p.extend_from_slice(&big);
        assert_eq!(decode(p.clone()).unwrap(), vec![0u8; 16]);
        p.truncate(3);
        assert!(decode(p).is_err());
    }
}
