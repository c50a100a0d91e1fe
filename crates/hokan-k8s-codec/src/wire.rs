//! The protobuf wire format, read defensively: every length is checked
//! against the input, so malformed bytes give an error and never a panic.

use crate::Error;

pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const START_GROUP: u8 = 3;
pub(crate) const END_GROUP: u8 = 4;
pub(crate) const FIXED32: u8 = 5;

/// Nesting limit for messages and groups, far above any Kubernetes type.
pub(crate) const MAX_DEPTH: u32 = 100;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| malformed("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    /// A field key: (field number, wire type).
    pub(crate) fn key(&mut self) -> Result<(u32, u8), Error> {
        let k = self.varint()?;
        let number = k >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(malformed(&format!("illegal field number {number}")));
        }
        Ok((number as u32, (k & 7) as u8))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| malformed("length runs past the end of the message"))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn advance(&mut self, n: usize) -> Result<(), Error> {
        if self.buf.len() - self.pos < n {
            return Err(malformed("truncated fixed-width field"));
        }
        self.pos += n;
        Ok(())
    }

    /// Skips a field this schema does not know, as Go's generated code does
    /// for fields added by a newer API server.
    pub(crate) fn skip(&mut self, wire: u8, number: u32, depth: u32) -> Result<(), Error> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.advance(8),
            LEN => self.bytes().map(drop),
            FIXED32 => self.advance(4),
            START_GROUP => {
                if depth >= MAX_DEPTH {
                    return Err(malformed("groups nested too deeply"));
                }
                loop {
                    let (n, w) = self.key()?;
                    if w == END_GROUP {
                        return if n == number {
                            Ok(())
                        } else {
                            Err(malformed("mismatched end of group"))
                        };
                    }
                    self.skip(w, n, depth + 1)?;
                }
            }
            _ => Err(malformed(&format!("invalid wire type {wire}"))),
        }
    }
}

pub(crate) fn malformed(what: &str) -> Error {
    Error::Malformed {
        path: String::new(),
        reason: what.to_string(),
    }
}

/// Reads the fields of a small message into (number → last value) for the
/// hand-decoded types (Time, IntOrString, …): varints and byte strings only.
pub(crate) fn small_fields<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u32, Value<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (n, w) = r.key()?;
        match w {
            VARINT => f(n, Value::Varint(r.varint()?))?,
            LEN => f(n, Value::Bytes(r.bytes()?))?,
            _ => r.skip(w, n, 0)?,
        }
    }
    Ok(())
}

pub(crate) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}
