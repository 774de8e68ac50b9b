//! A borrowed protobuf wire reader: walks the fields of one message without copying or
//! allocating.
//!
//! It is deliberately strict. Whatever it cannot vouch for (a malformed varint, a
//! length past the end, a group, tag 0) is reported as [`Unsupported`], and the caller
//! then takes the prost path, which gives the exact answer, error message included. So
//! this reader never has to reproduce prost's error texts, only never accept less
//! than prost would refuse.

/// The reader cannot vouch for these bytes; decode them with prost instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not handled by the borrowed reader")]
pub(crate) struct Unsupported;

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, a string or a nested message.
    Len(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> Wire<'a> {
    /// The value of a varint field (`uint32`, `int32`, enums take its low bits, as
    /// prost does).
    pub(crate) fn varint(self) -> Result<u64, Unsupported> {
        match self {
            Self::Varint(v) => Ok(v),
            _ => Err(Unsupported),
        }
    }

    /// The value of a `fixed64` field.
    pub(crate) fn fixed64(self) -> Result<u64, Unsupported> {
        match self {
            Self::Fixed64(v) => Ok(v),
            _ => Err(Unsupported),
        }
    }

    /// The value of a `fixed32` field.
    pub(crate) fn fixed32(self) -> Result<u32, Unsupported> {
        match self {
            Self::Fixed32(v) => Ok(v),
            _ => Err(Unsupported),
        }
    }

    /// The bytes of a length-delimited field (bytes or a nested message).
    pub(crate) fn bytes(self) -> Result<&'a [u8], Unsupported> {
        match self {
            Self::Len(v) => Ok(v),
            _ => Err(Unsupported),
        }
    }

    /// The text of a string field, which prost requires to be UTF-8.
    pub(crate) fn str(self) -> Result<&'a str, Unsupported> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Unsupported)
    }
}

/// The fields of one message, in wire order.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The fields of the message encoded in `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next field's number and value, `None` at the end of the message.
    ///
    /// # Errors
    /// [`Unsupported`] for anything prost might refuse: a bad varint or key, a length
    /// past the end, field number 0, or a group (deprecated, never sent by OTLP).
    #[inline]
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, Unsupported> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| Unsupported)?;
        if number == 0 {
            return Err(Unsupported);
        }
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| Unsupported)?;
                Wire::Len(self.take(len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(self.take_array()?)),
            _ => return Err(Unsupported),
        };
        Ok(Some((number, value)))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], Unsupported> {
        if len > self.rest.len() {
            return Err(Unsupported);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    #[inline]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], Unsupported> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("took N bytes"))
    }

    /// A base-128 varint of at most 10 bytes whose tenth byte is 0 or 1, as prost
    /// accepts.
    #[inline]
    fn varint(&mut self) -> Result<u64, Unsupported> {
        let mut value = 0u64;
        for (i, byte) in self.rest.iter().take(10).enumerate() {
            if i == 9 && *byte > 1 {
                return Err(Unsupported);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A message with one field of each wire type.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Sample {
        #[prost(uint64, tag = "1")]
        varint: u64,
        #[prost(fixed64, tag = "2")]
        fixed64: u64,
        #[prost(string, tag = "3")]
        text: String,
        #[prost(fixed32, tag = "4")]
        fixed32: u32,
    }

    fn fields(bytes: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, Unsupported> {
        let mut fields = Fields::new(bytes);
        let mut seen = Vec::new();
        while let Some(field) = fields.next_field()? {
            seen.push(field);
        }
        Ok(seen)
    }

    #[test]
    fn reads_every_wire_type() {
        let sample = Sample {
            varint: u64::MAX,
            fixed64: 7,
            text: "héllo".to_string(),
            fixed32: 9,
        };
        let bytes = sample.encode_to_vec();
        let seen = fields(&bytes).unwrap();
        assert_eq!(
            seen,
            vec![
                (1, Wire::Varint(u64::MAX)),
                (2, Wire::Fixed64(7)),
                (3, Wire::Len("héllo".as_bytes())),
                (4, Wire::Fixed32(9)),
            ]
        );
        assert_eq!(seen[2].1.str(), Ok("héllo"));
    }

    #[test]
    fn refuses_what_prost_refuses() {
        let cases: [&[u8]; 7] = [
            &[0x08],       // varint missing
            &[0x08, 0x80], // varint cut short
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ], // overflow
            &[0x1a, 0x05, b'a'], // length past the end
            &[0x11, 0, 0, 0], // fixed64 cut short
            &[0x00, 0x00], // field number 0
            &[0x0b, 0x0c], // a group
        ];
        for bytes in cases {
            assert_eq!(fields(bytes), Err(Unsupported), "{bytes:?}");
            assert!(Sample::decode(bytes).is_err(), "prost accepts {bytes:?}");
        }
        assert_eq!(Wire::Len(&[0xff]).str(), Err(Unsupported));
    }
}
