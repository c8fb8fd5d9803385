//! A small MessagePack codec: enough to walk flytekit's msgpack-encoded dataclasses for
//! attribute paths and re-encode the selected value.

#[derive(Debug, Clone, PartialEq)]
pub enum MpValue {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<MpValue>),
    Map(Vec<(MpValue, MpValue)>),
    Ext(i8, Vec<u8>),
}

pub fn decode(bytes: &[u8]) -> Result<MpValue, String> {
    let mut r = Reader { b: bytes, pos: 0 };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err("trailing bytes".into());
    }
    Ok(v)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or("truncated")?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |a, b| (a << 8) | u64::from(*b)))
    }
    fn str(&mut self, n: usize) -> Result<MpValue, String> {
        let s = self.take(n)?;
        Ok(MpValue::Str(
            String::from_utf8(s.to_vec()).map_err(|e| e.to_string())?,
        ))
    }
    fn array(&mut self, n: usize, depth: usize) -> Result<MpValue, String> {
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            v.push(self.value(depth + 1)?);
        }
        Ok(MpValue::Array(v))
    }
    fn map(&mut self, n: usize, depth: usize) -> Result<MpValue, String> {
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let val = self.value(depth + 1)?;
            v.push((k, val));
        }
        Ok(MpValue::Map(v))
    }
    fn ext(&mut self, n: usize) -> Result<MpValue, String> {
        let t = self.u8()? as i8;
        Ok(MpValue::Ext(t, self.take(n)?.to_vec()))
    }
    fn value(&mut self, depth: usize) -> Result<MpValue, String> {
        if depth > 256 {
            return Err("nested too deeply".into());
        }
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => MpValue::Int(i64::from(m)),
            0x80..=0x8f => return self.map(usize::from(m & 0x0f), depth),
            0x90..=0x9f => return self.array(usize::from(m & 0x0f), depth),
            0xa0..=0xbf => return self.str(usize::from(m & 0x1f)),
            0xc0 => MpValue::Nil,
            0xc2 => MpValue::Bool(false),
            0xc3 => MpValue::Bool(true),
            0xc4..=0xc6 => {
                let n = self.be(1 << (m - 0xc4))? as usize;
                MpValue::Bin(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.be(1 << (m - 0xc7))? as usize;
                return self.ext(n);
            }
            0xca => MpValue::F32(f32::from_bits(self.be(4)? as u32)),
            0xcb => MpValue::F64(f64::from_bits(self.be(8)?)),
            0xcc..=0xcf => MpValue::UInt(self.be(1 << (m - 0xcc))?),
            0xd0 => MpValue::Int(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => MpValue::Int(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => MpValue::Int(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => MpValue::Int(self.be(8)? as i64),
            0xd4..=0xd8 => return self.ext(1 << (m - 0xd4)),
            0xd9..=0xdb => {
                let n = self.be(1 << (m - 0xd9))? as usize;
                return self.str(n);
            }
            0xdc..=0xdd => {
                let n = self.be(2 << (m - 0xdc))? as usize;
                return self.array(n, depth);
            }
            0xde..=0xdf => {
                let n = self.be(2 << (m - 0xde))? as usize;
                return self.map(n, depth);
            }
            0xe0..=0xff => MpValue::Int(i64::from(m as i8)),
            0xc1 => return Err("reserved marker 0xc1".into()),
        })
    }
}

pub fn encode(v: &MpValue) -> Vec<u8> {
    let mut out = Vec::new();
    write(v, &mut out);
    out
}

fn write_len(
    out: &mut Vec<u8>,
    n: usize,
    fix: Option<(u8, usize)>,
    m8: Option<u8>,
    m16: u8,
    m32: u8,
) {
    if let Some((base, max)) = fix
        && n <= max
    {
        out.push(base | n as u8);
    } else if let Some(m) = m8.filter(|_| n <= 0xff) {
        out.push(m);
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(m16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn write(v: &MpValue, out: &mut Vec<u8>) {
    match v {
        MpValue::Nil => out.push(0xc0),
        MpValue::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        MpValue::Int(i) if *i >= 0 => write(&MpValue::UInt(*i as u64), out),
        MpValue::Int(i) => {
            if *i >= -32 {
                out.push(*i as i8 as u8);
            } else if *i >= i64::from(i8::MIN) {
                out.push(0xd0);
                out.push(*i as i8 as u8);
            } else if *i >= i64::from(i16::MIN) {
                out.push(0xd1);
                out.extend_from_slice(&(*i as i16).to_be_bytes());
            } else if *i >= i64::from(i32::MIN) {
                out.push(0xd2);
                out.extend_from_slice(&(*i as i32).to_be_bytes());
            } else {
                out.push(0xd3);
                out.extend_from_slice(&i.to_be_bytes());
            }
        }
        MpValue::UInt(u) => {
            if *u <= 0x7f {
                out.push(*u as u8);
            } else if *u <= 0xff {
                out.push(0xcc);
                out.push(*u as u8);
            } else if *u <= 0xffff {
                out.push(0xcd);
                out.extend_from_slice(&(*u as u16).to_be_bytes());
            } else if *u <= 0xffff_ffff {
                out.push(0xce);
                out.extend_from_slice(&(*u as u32).to_be_bytes());
            } else {
                out.push(0xcf);
                out.extend_from_slice(&u.to_be_bytes());
            }
        }
        MpValue::F32(f) => {
            out.push(0xca);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        MpValue::F64(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        MpValue::Str(s) => {
            write_len(out, s.len(), Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb);
            out.extend_from_slice(s.as_bytes());
        }
        MpValue::Bin(b) => {
            write_len(out, b.len(), None, Some(0xc4), 0xc5, 0xc6);
            out.extend_from_slice(b);
        }
        MpValue::Array(items) => {
            write_len(out, items.len(), Some((0x90, 15)), None, 0xdc, 0xdd);
            items.iter().for_each(|i| write(i, out));
        }
        MpValue::Map(entries) => {
            write_len(out, entries.len(), Some((0x80, 15)), None, 0xde, 0xdf);
            for (k, v) in entries {
                write(k, out);
                write(v, out);
            }
        }
        MpValue::Ext(t, data) => {
            match data.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                n => write_len(out, n, None, Some(0xc7), 0xc8, 0xc9),
            }
            out.push(*t as u8);
            out.extend_from_slice(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let v = MpValue::Map(vec![
            (MpValue::Str("a".into()), MpValue::Int(-100_000)),
            (MpValue::Str("b".repeat(40)), MpValue::UInt(70_000)),
            (
                MpValue::Str("c".into()),
                MpValue::Array((0..20).map(MpValue::Int).collect()),
            ),
            (MpValue::Str("d".into()), MpValue::F64(0.25)),
            (MpValue::Str("e".into()), MpValue::Nil),
            (MpValue::Str("f".into()), MpValue::Bin(vec![1, 2, 3])),
        ]);
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        // {"x": 1} as Python msgpack writes it.
        assert_eq!(
            decode(&[0x81, 0xa1, b'x', 0x01]).unwrap(),
            MpValue::Map(vec![(MpValue::Str("x".into()), MpValue::Int(1))])
        );
        assert!(decode(&[0x92, 0x01]).is_err());
    }
}
