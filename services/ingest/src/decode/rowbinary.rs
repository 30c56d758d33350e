//! RowBinary primitives: LEB128 lengths, length-prefixed strings and integers of any width up to 256
//! bits in little-endian two's complement.

use roost_types::ChType;

/// Appends `n` as an unsigned LEB128 varint, as RowBinary prefixes strings, arrays and maps.
pub(super) fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a RowBinary `String`: the varint length, then the bytes.
pub(super) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Width in bits and signedness of an integer type; None for other types.
pub(super) fn int_spec(ty: &ChType) -> Option<(u32, bool)> {
    Some(match ty {
        ChType::UInt8 => (8, false),
        ChType::UInt16 => (16, false),
        ChType::UInt32 => (32, false),
        ChType::UInt64 => (64, false),
        ChType::UInt128 => (128, false),
        ChType::UInt256 => (256, false),
        ChType::Int8 => (8, true),
        ChType::Int16 => (16, true),
        ChType::Int32 => (32, true),
        ChType::Int64 => (64, true),
        ChType::Int128 => (128, true),
        ChType::Int256 => (256, true),
        _ => return None,
    })
}

/// An integer of up to 256 bits as sign and magnitude, so every integer and decimal width shares one
/// parser, one range check and one writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Wide {
    negative: bool,
    /// Little-endian 64-bit limbs.
    magnitude: [u64; 4],
}

impl Wide {
    pub(super) fn from_u64(value: u64) -> Wide {
        Wide {
            negative: false,
            magnitude: [value, 0, 0, 0],
        }
    }

    pub(super) fn from_i64(value: i64) -> Wide {
        Wide {
            negative: value < 0,
            magnitude: [value.unsigned_abs(), 0, 0, 0],
        }
    }

    /// The integer value of a finite float without a fractional part.
    pub(super) fn from_f64(value: f64) -> Option<Wide> {
        if !value.is_finite() || value.fract() != 0.0 {
            return None;
        }
        let abs = value.abs();
        // 2^63
        if abs < 9_223_372_036_854_775_808.0 {
            return Some(Wide::from_i64(value as i64));
        }
        // |value| >= 2^63: an integer mantissa shifted left by a non-negative exponent.
        let bits = abs.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as u32 - 1075;
        let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
        if exponent + 53 > 256 {
            return None;
        }
        let mut magnitude = [0u64; 4];
        let limb = (exponent / 64) as usize;
        let shift = exponent % 64;
        magnitude[limb] = mantissa << shift;
        if shift > 0 && limb + 1 < 4 {
            magnitude[limb + 1] = mantissa >> (64 - shift);
        }
        Some(Wide {
            negative: value < 0.0,
            magnitude,
        })
    }

    pub(super) fn negate(&mut self) {
        self.negative = !self.negative;
    }

    pub(super) fn is_zero(&self) -> bool {
        self.magnitude == [0; 4]
    }

    /// `self * 10 + digit`; false when the magnitude would exceed 256 bits.
    pub(super) fn push_digit(&mut self, digit: u8) -> bool {
        let mut carry = u128::from(digit);
        for limb in &mut self.magnitude {
            let next = u128::from(*limb) * 10 + carry;
            *limb = next as u64;
            carry = next >> 64;
        }
        carry == 0
    }

    /// Parses `[+-]digits`, the form ClickHouse reads integers in.
    pub(super) fn parse(text: &str) -> Option<Wide> {
        let bytes = text.as_bytes();
        let (negative, digits) = match bytes.first()? {
            b'-' => (true, &bytes[1..]),
            b'+' => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        if digits.is_empty() {
            return None;
        }
        // Fast path for what fits in a u64 (19 digits always do).
        if digits.len() <= 19 {
            let mut value = 0u64;
            for &b in digits {
                if !b.is_ascii_digit() {
                    return None;
                }
                value = value * 10 + u64::from(b - b'0');
            }
            let mut wide = Wide::from_u64(value);
            wide.negative = negative;
            return Some(wide);
        }
        let mut wide = Wide::default();
        for &b in digits {
            if !b.is_ascii_digit() || !wide.push_digit(b - b'0') {
                return None;
            }
        }
        wide.negative = negative;
        Some(wide)
    }

    fn bit_length(&self) -> u32 {
        for (i, limb) in self.magnitude.iter().enumerate().rev() {
            if *limb != 0 {
                return i as u32 * 64 + (64 - limb.leading_zeros());
            }
        }
        0
    }

    /// True when the value is in range of a `bits`-wide integer of the given signedness.
    pub(super) fn fits(&self, bits: u32, signed: bool) -> bool {
        if self.is_zero() {
            return true;
        }
        let length = self.bit_length();
        match (signed, self.negative) {
            (false, true) => false,
            (false, false) => length <= bits,
            (true, false) => length < bits,
            // -2^(bits-1) is the one negative value whose magnitude needs `bits` bits.
            (true, true) => length < bits || (length == bits && self.is_power_of_two()),
        }
    }

    fn is_power_of_two(&self) -> bool {
        self.magnitude.iter().map(|l| l.count_ones()).sum::<u32>() == 1
    }

    /// The value as a `i64`, when it fits.
    pub(super) fn to_i64(self) -> Option<i64> {
        self.fits(64, true).then(|| {
            let low = self.magnitude[0];
            if self.negative {
                low.wrapping_neg() as i64
            } else {
                low as i64
            }
        })
    }

    /// Appends the low `bytes` bytes of the two's complement representation, little-endian.
    pub(super) fn write_le(&self, bytes: usize, out: &mut Vec<u8>) {
        let mut limbs = self.magnitude;
        if self.negative && !self.is_zero() {
            let mut carry = true;
            for limb in &mut limbs {
                let (sum, overflow) = (!*limb).overflowing_add(u64::from(carry));
                *limb = sum;
                carry = overflow;
            }
        }
        let mut buffer = [0u8; 32];
        for (i, limb) in limbs.iter().enumerate() {
            buffer[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out.extend_from_slice(&buffer[..bytes]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(wide: Wide, bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        wide.write_le(bytes, &mut out);
        out
    }

    #[test]
    fn varints() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (n, expected) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, n);
            assert_eq!(out, expected, "{n}");
        }
    }

    #[test]
    fn parses_and_ranges() {
        assert_eq!(Wide::parse("-128").unwrap(), Wide::from_i64(-128));
        assert_eq!(Wide::parse("+7").unwrap(), Wide::from_i64(7));
        assert!(Wide::parse("").is_none());
        assert!(Wide::parse("-").is_none());
        assert!(Wide::parse("1.5").is_none());
        assert!(Wide::parse("12a").is_none());
        assert!(Wide::parse("-128").unwrap().fits(8, true));
        assert!(!Wide::parse("-129").unwrap().fits(8, true));
        assert!(!Wide::parse("128").unwrap().fits(8, true));
        assert!(Wide::parse("255").unwrap().fits(8, false));
        assert!(!Wide::parse("256").unwrap().fits(8, false));
        assert!(!Wide::parse("-1").unwrap().fits(64, false));
        assert!(Wide::parse("-0").unwrap().fits(8, false));
        let max_u256 =
            "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert!(Wide::parse(max_u256).unwrap().fits(256, false));
        assert!(!Wide::parse(max_u256).unwrap().fits(256, true));
        assert!(Wide::parse(&format!("{max_u256}0")).is_none());
        let min_i128 = i128::MIN.to_string();
        assert!(Wide::parse(&min_i128).unwrap().fits(128, true));
        assert!(
            !Wide::parse("170141183460469231731687303715884105728")
                .unwrap()
                .fits(128, true)
        );
    }

    #[test]
    fn twos_complement_little_endian() {
        assert_eq!(le(Wide::from_i64(7), 4), [7, 0, 0, 0]);
        assert_eq!(le(Wide::from_i64(-1), 2), [0xff, 0xff]);
        assert_eq!(le(Wide::from_i64(-2), 4), [0xfe, 0xff, 0xff, 0xff]);
        let min = Wide::parse(&i128::MIN.to_string()).unwrap();
        assert_eq!(le(min, 16), i128::MIN.to_le_bytes());
        let big = Wide::parse("-12345678901234567890123456789").unwrap();
        assert_eq!(
            le(big, 16),
            (-12345678901234567890123456789i128).to_le_bytes()
        );
        let mut expected = (-5i128).to_le_bytes().to_vec();
        expected.extend_from_slice(&[0xff; 16]);
        assert_eq!(le(Wide::from_i64(-5), 32), expected);
    }

    #[test]
    fn floats_with_integer_values() {
        assert_eq!(Wide::from_f64(3.0), Some(Wide::from_i64(3)));
        assert_eq!(Wide::from_f64(-3.0), Some(Wide::from_i64(-3)));
        assert_eq!(Wide::from_f64(3.5), None);
        assert_eq!(Wide::from_f64(f64::NAN), None);
        let two_pow_64 = Wide::from_f64(18446744073709551616.0).unwrap();
        assert_eq!(le(two_pow_64, 16), (1u128 << 64).to_le_bytes());
        let big = Wide::from_f64(1e30).unwrap();
        assert_eq!(le(big, 16), (1e30 as u128).to_le_bytes());
        assert_eq!(Wide::from_f64(1e300), None);
    }
}
