//! Exact sums of floats: a fixed-point accumulator wide enough for every `f64`, so a sum does not
//! depend on the order its values were added or merged in, and is rounded once, when read.
//!
//! A float `m * 2^e` is an integer multiple of `2^-1074` (the smallest subnormal), and the
//! largest is below `2^1024`, so every finite `f64` is an integer of at most 2098 bits in units
//! of `2^-1074`. [`ExactSum`] keeps that integer in 67 signed 64-bit limbs of 32 bits each
//! (Neal's "small superaccumulator", carry-save: a limb may hold more than 32 bits until the next
//! carry pass), which is room for far more than 2^64 values of any size. Adding a value touches
//! three limbs; carries are propagated only every 2^29 additions. Infinities and NaN are
//! counted apart, so that adding and retracting them is exact too: the sum is NaN with a NaN or
//! with both infinities, else the infinity, else the rounded finite sum (which overflows to an
//! infinity past `f64::MAX`, as IEEE addition does). Integer addition, subtraction and merging
//! are associative and commutative, so the result is the same bits for any order and any split
//! into partial sums: the correctly rounded (to nearest, ties to even) value of the exact sum.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of 32-bit limbs: 2098 bits of `f64` range, 32 spare bits for carries, rounded up.
const LIMBS: usize = 67;
/// Bits per limb.
const LIMB_BITS: u32 = 32;
const LIMB_MASK: i64 = (1 << LIMB_BITS) - 1;
/// The position of `2^0` in the fixed-point integer: units are `2^-1074`.
const ONE_AT: u32 = 1074;
/// Carry after this many additions: each adds under `2^32` to a limb, so a limb stays below
/// `2^62` in magnitude.
const CARRY_EVERY: u32 = 1 << 29;
/// Two zero limbs below the integer when rounding: guard bits for a quotient (the mean).
const GUARD_LIMBS: usize = 2;
/// The magnitude as unsigned limbs: guard limbs, the lower limbs and the top limb in two.
const MAGNITUDE_LIMBS: usize = GUARD_LIMBS + LIMBS + 1;

/// The exact sum of a multiset of `f64` values: add, retract and merge in any order and get the
/// same, correctly rounded, result.
///
/// Serializable for snapshots; it allocates its limbs once, at the first finite non-zero value.
///
/// # Examples
/// ```
/// use tideflow_operators::aggregate::ExactSum;
/// let mut forward = ExactSum::default();
/// for x in [1e16, 1.0, -1e16, 0.1] { forward.add(x); }
/// let mut backward = ExactSum::default();
/// for x in [0.1, -1e16, 1.0, 1e16] { backward.add(x); }
/// assert_eq!(forward.to_f64(), 1.1);
/// assert_eq!(forward.to_f64().to_bits(), backward.to_f64().to_bits());
/// ```
#[derive(Clone, Default)]
pub struct ExactSum {
    /// The finite values' sum in units of `2^-1074`, least significant limb first; `None` until
    /// a non-zero finite value arrives.
    limbs: Option<Box<[i64; LIMBS]>>,
    /// While `limbs` is `None`: the finite values' sum, exactly (every addition so far was
    /// exact in `f64`, so the plain sum is the exact one, whatever the order). Zero otherwise.
    plain: f64,
    /// Additions since the last carry pass.
    pending: u32,
    /// NaNs, +infinities and -infinities added (less those retracted).
    nans: i64,
    positive_infinities: i64,
    negative_infinities: i64,
}

impl ExactSum {
    /// Adds `value`.
    #[inline]
    pub fn add(&mut self, value: f64) {
        self.add_signed(value, false);
    }

    /// Removes a `value` added before.
    #[inline]
    pub fn subtract(&mut self, value: f64) {
        self.add_signed(value, true);
    }

    /// Adds an integer exactly.
    pub fn add_integer(&mut self, value: i128) {
        let negative = value < 0;
        let magnitude = value.unsigned_abs();
        self.add_bits(ONE_AT, magnitude as u64, negative);
        self.add_bits(ONE_AT + 64, (magnitude >> 64) as u64, negative);
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &ExactSum) {
        self.combine(other, 1);
    }

    /// Removes everything `other` holds (which was merged or added here before).
    pub fn retract(&mut self, other: &ExactSum) {
        self.combine(other, -1);
    }

    /// The sum, rounded to the nearest `f64` (ties to even).
    pub fn to_f64(&self) -> f64 {
        if self.limbs.is_none() {
            return self.special().unwrap_or(self.plain);
        }
        self.rounded(1)
            .map_or_else(|special| special, |fixed| fixed.to_f64())
    }

    /// The sum, rounded to the nearest `f32` (ties to even), without rounding twice.
    pub fn to_f32(&self) -> f32 {
        // A NaN or infinity is the same in f32; the exact plain sum is rounded once.
        if self.limbs.is_none() {
            return self.special().unwrap_or(self.plain) as f32;
        }
        self.rounded(1)
            .map_or_else(|special| special as f32, |fixed| fixed.to_f32())
    }

    /// The sum divided by `count`, rounded once to the nearest `f64`: a mean. NaN for a count
    /// of zero.
    pub fn mean(&self, count: u64) -> f64 {
        if count == 0 {
            return f64::NAN;
        }
        // The exact plain sum over a count exact in f64: IEEE division rounds once.
        if self.limbs.is_none() && count <= 1 << 53 {
            return self.special().unwrap_or(self.plain / count as f64);
        }
        self.rounded(count)
            .map_or_else(|special| special, |fixed| fixed.to_f64())
    }

    fn add_signed(&mut self, value: f64, subtract: bool) {
        if value.is_nan() {
            self.nans += if subtract { -1 } else { 1 };
            return;
        }
        if value.is_infinite() {
            let step = if subtract { -1 } else { 1 };
            if value > 0.0 {
                self.positive_infinities += step;
            } else {
                self.negative_infinities += step;
            }
            return;
        }
        if self.limbs.is_none() {
            let value = if subtract { -value } else { value };
            if let Some(sum) = exact_plain_sum(self.plain, value) {
                self.plain = sum;
                return;
            }
            self.spill();
            self.add_finite(value, false);
            return;
        }
        self.add_finite(value, subtract);
    }

    /// Adds (or subtracts) a finite `value` to the limbs.
    fn add_finite(&mut self, value: f64, subtract: bool) {
        let bits = value.to_bits();
        let negative = (bits >> 63 != 0) != subtract;
        let exponent = ((bits >> 52) & 0x7ff) as u32;
        let fraction = bits & ((1 << 52) - 1);
        // value = mantissa * 2^(exponent - 1075) = mantissa * 2^(exponent - 1) units (normal),
        // or fraction units (subnormal).
        let (mantissa, at) = if exponent == 0 {
            (fraction, 0)
        } else {
            (fraction | 1 << 52, exponent - 1)
        };
        self.add_bits(at, mantissa, negative);
    }

    /// Adds (or subtracts) `bits * 2^at` units.
    #[inline]
    fn add_bits(&mut self, at: u32, bits: u64, negative: bool) {
        if bits == 0 {
            return;
        }
        let limbs = self.spill();
        let index = (at / LIMB_BITS) as usize;
        let wide = u128::from(bits) << (at % LIMB_BITS);
        let parts = [
            (wide as i64) & LIMB_MASK,
            ((wide >> LIMB_BITS) as i64) & LIMB_MASK,
            (wide >> (2 * LIMB_BITS)) as i64,
        ];
        for (limb, part) in limbs[index..index + 3].iter_mut().zip(parts) {
            if negative {
                *limb -= part;
            } else {
                *limb += part;
            }
        }
        self.pending += 1;
        if self.pending >= CARRY_EVERY {
            self.carry();
        }
    }

    fn combine(&mut self, other: &ExactSum, sign: i64) {
        self.nans += sign * other.nans;
        self.positive_infinities += sign * other.positive_infinities;
        self.negative_infinities += sign * other.negative_infinities;
        let Some(theirs) = &other.limbs else {
            // Their plain sum is exact, and so is its negation.
            let value = if sign < 0 { -other.plain } else { other.plain };
            if self.limbs.is_none() {
                if let Some(sum) = exact_plain_sum(self.plain, value) {
                    self.plain = sum;
                    return;
                }
                self.spill();
            }
            self.add_finite(value, false);
            return;
        };
        let ours = self.spill();
        for (mine, their) in ours.iter_mut().zip(theirs.iter()) {
            *mine += sign * their;
        }
        // Their limbs are bounded as if by their pending additions and one carried value.
        self.pending += other.pending + 1;
        if self.pending >= CARRY_EVERY {
            self.carry();
        }
    }

    /// The limbs, allocated (holding the plain sum) if they were not yet.
    #[cold]
    fn spill(&mut self) -> &mut [i64; LIMBS] {
        if self.limbs.is_none() {
            self.limbs = Some(Box::new([0; LIMBS]));
            let plain = std::mem::take(&mut self.plain);
            if plain != 0.0 {
                self.add_finite(plain, false);
            }
        }
        self.limbs.as_mut().expect("just allocated")
    }

    /// The NaN or infinity the sum is, if it is one.
    fn special(&self) -> Option<f64> {
        if self.nans > 0 || (self.positive_infinities > 0 && self.negative_infinities > 0) {
            Some(f64::NAN)
        } else if self.positive_infinities > 0 {
            Some(f64::INFINITY)
        } else if self.negative_infinities > 0 {
            Some(f64::NEG_INFINITY)
        } else {
            None
        }
    }

    /// Propagates carries: every limb but the top one into `[0, 2^32)`.
    fn carry(&mut self) {
        if let Some(limbs) = &mut self.limbs {
            carry_limbs(limbs);
        }
        self.pending = 0;
    }

    /// The sum divided by `divisor` as a magnitude to round, or the NaN or infinity it is.
    fn rounded(&self, divisor: u64) -> Result<Fixed, f64> {
        if let Some(special) = self.special() {
            return Err(special);
        }
        let Some(limbs) = &self.limbs else {
            // Only for a plain sum of zero (the callers take the plain sum themselves).
            debug_assert!(self.plain == 0.0);
            return Ok(Fixed::zero());
        };
        let mut limbs = **limbs;
        carry_limbs(&mut limbs);
        let negative = limbs[LIMBS - 1] < 0;
        if negative {
            for limb in limbs.iter_mut() {
                *limb = -*limb;
            }
            carry_limbs(&mut limbs);
        }
        let mut magnitude = [0u32; MAGNITUDE_LIMBS];
        for (digit, limb) in magnitude[GUARD_LIMBS..].iter_mut().zip(&limbs[..LIMBS - 1]) {
            *digit = *limb as u32;
        }
        let top = limbs[LIMBS - 1] as u64;
        magnitude[MAGNITUDE_LIMBS - 2] = top as u32;
        magnitude[MAGNITUDE_LIMBS - 1] = (top >> LIMB_BITS) as u32;
        let mut inexact = false;
        if divisor > 1 {
            let mut remainder: u128 = 0;
            for digit in magnitude.iter_mut().rev() {
                let current = (remainder << LIMB_BITS) | u128::from(*digit);
                *digit = (current / u128::from(divisor)) as u32;
                remainder = current % u128::from(divisor);
            }
            inexact = remainder != 0;
        }
        Ok(Fixed {
            magnitude,
            inexact,
            negative,
        })
    }
}

/// `a + b` if it is exact in `f64` (and finite), by the error term of Knuth's TwoSum.
#[inline]
fn exact_plain_sum(a: f64, b: f64) -> Option<f64> {
    let sum = a + b;
    let b_part = sum - a;
    let error = (a - (sum - b_part)) + (b - b_part);
    (error == 0.0 && sum.is_finite()).then_some(sum)
}

/// Propagates carries through `limbs`, leaving all but the top one in `[0, 2^32)`.
fn carry_limbs(limbs: &mut [i64; LIMBS]) {
    let mut carry = 0i64;
    for limb in limbs[..LIMBS - 1].iter_mut() {
        let value = *limb + carry;
        *limb = value & LIMB_MASK;
        carry = value >> LIMB_BITS;
    }
    limbs[LIMBS - 1] += carry;
}

/// A finite magnitude in units of `2^-(1074 + 64)` (two guard limbs), with a sticky bit for
/// anything below it and its sign.
struct Fixed {
    magnitude: [u32; MAGNITUDE_LIMBS],
    inexact: bool,
    negative: bool,
}

impl Fixed {
    fn zero() -> Self {
        Fixed {
            magnitude: [0; MAGNITUDE_LIMBS],
            inexact: false,
            negative: false,
        }
    }

    /// The magnitude rounded to `precision` significant bits, ties to even, with no bit below
    /// `2^min_exponent`: `(mantissa, exponent)` with value `mantissa * 2^exponent` and
    /// `mantissa <= 2^precision`.
    fn round(&self, precision: u32, min_exponent: i32) -> (u64, i32) {
        let Some(high) = self.magnitude.iter().rposition(|d| *d != 0) else {
            return (0, min_exponent);
        };
        let digit =
            |i: isize| -> u128 { usize::try_from(i).map_or(0, |i| u128::from(self.magnitude[i])) };
        let high = high as isize;
        let window = digit(high) << 64 | digit(high - 1) << 32 | digit(high - 2);
        let below = usize::try_from(high - 2).unwrap_or(0);
        let sticky = self.inexact || self.magnitude[..below].iter().any(|d| *d != 0);
        let lowest = -(ONE_AT as i32) - 64 + 32 * (high as i32 - 2);
        let width = 128 - window.leading_zeros() as i32;
        let shift = (width - precision as i32).max(min_exponent - lowest);
        if shift <= 0 {
            // Exact (cannot happen for sums of f64, whose guard limbs are empty).
            return ((window << -shift) as u64, lowest + shift);
        }
        if shift >= 128 {
            // Below half the smallest subnormal.
            return (0, min_exponent);
        }
        let mantissa = window >> shift;
        let rest = window & ((1 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let up = rest > half || (rest == half && (sticky || mantissa & 1 == 1));
        ((mantissa + u128::from(up)) as u64, lowest + shift)
    }
}

impl Fixed {
    fn to_f64(&self) -> f64 {
        let (mantissa, exponent) = self.round(53, -1074);
        // mantissa <= 2^53 is exact as f64; the product is exact unless it overflows.
        let magnitude = if mantissa == 0 {
            0.0
        } else if exponent > 1023 {
            f64::INFINITY
        } else {
            mantissa as f64 * pow2_f64(exponent)
        };
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }

    fn to_f32(&self) -> f32 {
        let (mantissa, exponent) = self.round(24, -149);
        let magnitude = if mantissa == 0 {
            0.0
        } else if exponent > 127 {
            f32::INFINITY
        } else {
            mantissa as f32 * pow2_f32(exponent)
        };
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// `2^exponent` for `-1074 <= exponent <= 1023`.
fn pow2_f64(exponent: i32) -> f64 {
    if exponent >= -1022 {
        f64::from_bits(((exponent + 1023) as u64) << 52)
    } else {
        f64::from_bits(1 << (exponent + 1074))
    }
}

/// `2^exponent` for `-149 <= exponent <= 127`.
fn pow2_f32(exponent: i32) -> f32 {
    if exponent >= -126 {
        f32::from_bits(((exponent + 127) as u32) << 23)
    } else {
        f32::from_bits(1 << (exponent + 149))
    }
}

impl fmt::Debug for ExactSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactSum")
            .field("value", &self.to_f64())
            .field("nans", &self.nans)
            .field("positive_infinities", &self.positive_infinities)
            .field("negative_infinities", &self.negative_infinities)
            .finish()
    }
}

/// How an [`ExactSum`] is stored: carried limbs, without the zero ones at either end.
#[derive(Serialize, Deserialize)]
struct StoredSum {
    nans: i64,
    positive_infinities: i64,
    negative_infinities: i64,
    /// The index of the first stored limb.
    first: u32,
    limbs: Vec<i64>,
}

impl Serialize for ExactSum {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut stored = StoredSum {
            nans: self.nans,
            positive_infinities: self.positive_infinities,
            negative_infinities: self.negative_infinities,
            first: 0,
            limbs: Vec::new(),
        };
        let mut spilled;
        let mut limbs = &self.limbs;
        if limbs.is_none() && self.plain != 0.0 {
            spilled = ExactSum::default();
            spilled.add_finite(self.plain, false);
            limbs = &spilled.limbs;
        }
        if let Some(limbs) = limbs {
            let mut limbs = **limbs;
            carry_limbs(&mut limbs);
            if let Some(first) = limbs.iter().position(|l| *l != 0) {
                let last = limbs.iter().rposition(|l| *l != 0).unwrap_or(first);
                stored.first = first as u32;
                stored.limbs = limbs[first..=last].to_vec();
            }
        }
        stored.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ExactSum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = StoredSum::deserialize(deserializer)?;
        let first = stored.first as usize;
        let end = first + stored.limbs.len();
        let invalid = || serde::de::Error::custom("invalid exact sum: limbs out of range");
        if end > LIMBS {
            return Err(invalid());
        }
        let mut sum = ExactSum {
            limbs: None,
            plain: 0.0,
            pending: 0,
            nans: stored.nans,
            positive_infinities: stored.positive_infinities,
            negative_infinities: stored.negative_infinities,
        };
        if !stored.limbs.is_empty() {
            let mut limbs = Box::new([0; LIMBS]);
            limbs[first..end].copy_from_slice(&stored.limbs);
            // Carried limbs: all but the top one are 32-bit digits.
            if limbs[..LIMBS - 1]
                .iter()
                .any(|l| !(0..=LIMB_MASK).contains(l))
            {
                return Err(invalid());
            }
            sum.limbs = Some(limbs);
        }
        Ok(sum)
    }
}

#[cfg(test)]
mod tests;
