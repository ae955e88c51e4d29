//! Exact sums against an independent reference: Shewchuk's exact partials with Python's
//! correctly rounded `fsum` final step, over random floats of wide exponents with cancellations,
//! in shuffled orders and split into merged partial sums.

use proptest::prelude::*;

use super::ExactSum;

/// Python's `math.fsum`: exact non-overlapping partials, then rounding with the half-way fix.
/// (Needs no partial to overflow: the tests keep values below 2^1000.)
fn fsum(values: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &value in values {
        let mut x = value;
        let mut kept = 0;
        for i in 0..partials.len() {
            let mut y = partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    let mut n = partials.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

fn sum_of(values: &[f64]) -> ExactSum {
    let mut sum = ExactSum::default();
    for value in values {
        sum.add(*value);
    }
    sum
}

/// A finite float with any exponent from the subnormals to 2^999.
fn wide_float() -> impl Strategy<Value = f64> {
    (any::<bool>(), 0u64..2023, any::<u64>()).prop_map(|(negative, exponent, fraction)| {
        let bits = (u64::from(negative) << 63) | (exponent << 52) | (fraction & ((1 << 52) - 1));
        f64::from_bits(bits)
    })
}

/// Wide floats, some followed by their negation or a near-negation (cancellations).
fn values() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((wide_float(), 0u8..4), 0..40).prop_map(|pairs| {
        let mut values = Vec::new();
        for (value, cancel) in pairs {
            values.push(value);
            match cancel {
                0 => values.push(-value),
                1 => values.push(-(value * (1.0 + f64::EPSILON))),
                _ => {}
            }
        }
        values
    })
}

/// Whether `mean` is the mean of `values` rounded to nearest, checked with `fsum` on the
/// residual `sum - mean * n` (exact by fma) against half an ulp on either side. Only for normal
/// means away from overflow, where those terms are exact.
fn is_rounded_mean(values: &[f64], mean: f64) -> bool {
    let n = values.len() as f64;
    let sign = if mean < 0.0 { -1.0 } else { 1.0 };
    let mean = mean.abs();
    let flipped: Vec<f64> = values.iter().map(|v| v * sign).collect();
    let product = mean * n;
    let error = mean.mul_add(n, -product);
    let exponent = ((mean.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let half_ulp = super::pow2_f64(exponent - 53) * n;
    let power_of_two = mean.to_bits() & ((1 << 52) - 1) == 0;
    let half_ulp_below = if power_of_two {
        half_ulp / 2.0
    } else {
        half_ulp
    };
    let residual = |extra: f64| {
        let mut terms = flipped.clone();
        terms.extend([-product, -error, extra]);
        fsum(&terms)
    };
    residual(-half_ulp) <= 0.0 && residual(half_ulp_below) >= 0.0
}

proptest! {
    #[test]
    fn sums_are_exactly_rounded_in_any_order_and_split(
        (values, shuffled) in values().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        split in 0usize..80,
    ) {
        let expected = fsum(&values);
        let forward = sum_of(&values).to_f64();
        prop_assert_eq!(forward.to_bits(), expected.to_bits(), "{:?}", values);
        prop_assert_eq!(sum_of(&shuffled).to_f64().to_bits(), expected.to_bits());
        let split = split.min(shuffled.len());
        let mut merged = sum_of(&shuffled[..split]);
        merged.merge(&sum_of(&shuffled[split..]));
        prop_assert_eq!(merged.to_f64().to_bits(), expected.to_bits());
        // Retracting a part leaves the sum of the rest.
        merged.retract(&sum_of(&shuffled[..split]));
        prop_assert_eq!(merged.to_f64().to_bits(), fsum(&shuffled[split..]).to_bits());
    }

    #[test]
    fn means_are_rounded_once_in_any_order(
        (values, shuffled) in values().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
    ) {
        prop_assume!(!values.is_empty());
        let count = values.len() as u64;
        let mean = sum_of(&values).mean(count);
        prop_assert_eq!(sum_of(&shuffled).mean(count).to_bits(), mean.to_bits());
        if mean != 0.0 && mean.abs() > 1e-290 && mean.abs() < 1e290 {
            prop_assert!(is_rounded_mean(&values, mean), "{:?}: {}", values, mean);
        }
    }

    #[test]
    fn snapshots_restore_the_same_sum(values in values()) {
        let sum = sum_of(&values);
        let bytes = bincode::serialize(&sum).unwrap();
        let restored: ExactSum = bincode::deserialize(&bytes).unwrap();
        prop_assert_eq!(restored.to_f64().to_bits(), sum.to_f64().to_bits());
    }
}

#[test]
fn cancellation_and_repeated_tenths_are_exact() {
    assert_eq!(sum_of(&[1e16, 1.0, -1e16]).to_f64(), 1.0);
    assert_eq!(sum_of(&[0.1; 10]).to_f64(), 1.0);
    assert_eq!(sum_of(&[1e308, 1e308, -1e308]).to_f64(), 1e308);
    assert_eq!(sum_of(&[f64::MAX, f64::MAX]).to_f64(), f64::INFINITY);
    assert_eq!(sum_of(&[-f64::MAX, -f64::MAX]).to_f64(), f64::NEG_INFINITY);
    // MAX + half its ulp is a tie; MAX's mantissa is odd, so it rounds up and overflows.
    assert_eq!(sum_of(&[f64::MAX, 2f64.powi(970)]).to_f64(), f64::INFINITY);
    assert_eq!(
        sum_of(&[f64::MAX, 2f64.powi(969)]).to_f64(),
        f64::MAX,
        "below the tie"
    );
    let tiny = f64::from_bits(1);
    assert_eq!(sum_of(&[tiny, tiny, tiny]).to_f64(), f64::from_bits(3));
    assert_eq!(
        sum_of(&[f64::MIN_POSITIVE, -tiny]).to_f64(),
        f64::MIN_POSITIVE - tiny
    );
    assert_eq!(sum_of(&[-0.0]).to_f64().to_bits(), 0.0f64.to_bits());
    assert_eq!(sum_of(&[]).to_f64(), 0.0);
    let mut mixed = sum_of(&[0.5]);
    mixed.add_integer(i128::from(i64::MAX) * 4);
    mixed.add_integer(-(i128::from(i64::MAX) * 4));
    assert_eq!(mixed.to_f64(), 0.5);
    assert_eq!(sum_of(&[0.1, 0.2]).to_f32(), 0.3f32);
}

#[test]
fn means_round_once() {
    assert_eq!(sum_of(&[1.0, 2.0]).mean(2), 1.5);
    assert_eq!(sum_of(&[0.1, 0.2, 0.3]).mean(3), 0.2);
    assert_eq!(sum_of(&[f64::MAX, f64::MAX]).mean(2), f64::MAX);
    // The smallest subnormal over two is a tie between 0 and it: ties go to the even zero.
    assert_eq!(sum_of(&[f64::from_bits(1)]).mean(2), 0.0);
    assert_eq!(sum_of(&[f64::from_bits(3)]).mean(2), f64::from_bits(2));
    assert!(sum_of(&[1.0]).mean(0).is_nan());
}

#[test]
fn nan_and_infinities_follow_ieee_and_retract() {
    let inf = f64::INFINITY;
    assert!(sum_of(&[1.0, f64::NAN]).to_f64().is_nan());
    assert!(sum_of(&[inf, -inf]).to_f64().is_nan());
    assert_eq!(sum_of(&[inf, 1.0, inf]).to_f64(), inf);
    assert_eq!(sum_of(&[-inf, 1.0]).mean(2), -inf);
    let mut sum = sum_of(&[2.0, f64::NAN, inf]);
    sum.retract(&sum_of(&[f64::NAN, inf]));
    assert_eq!(sum.to_f64(), 2.0);
    sum.subtract(2.0);
    assert_eq!(sum.to_f64(), 0.0);
}

#[test]
fn corrupt_snapshots_are_refused() {
    let mut sum = sum_of(&[1.5]);
    sum.add(-1e300);
    let bytes = bincode::serialize(&sum).unwrap();
    let restored: ExactSum = bincode::deserialize(&bytes).unwrap();
    assert_eq!(restored.to_f64(), sum.to_f64());
    let stored = super::StoredSum {
        nans: 0,
        positive_infinities: 0,
        negative_infinities: 0,
        first: 66,
        limbs: vec![1, 2],
    };
    let bytes = bincode::serialize(&stored).unwrap();
    assert!(bincode::deserialize::<ExactSum>(&bytes).is_err());
}

/// Values whose sums often stay exact in `f64` (small dyadic fractions), with now and then a
/// float that is not, so sums go from the plain `f64` to the limbs at any point.
fn mostly_exact() -> impl Strategy<Value = Vec<f64>> {
    let value = prop_oneof![
        8 => (-4096i32..4096).prop_map(|k| f64::from(k) / 8.0),
        1 => -1e6f64..1e6,
        1 => (-60i32..60).prop_map(|e| 2f64.powi(e)),
    ];
    prop::collection::vec(value, 0..40)
}

/// The same sum, kept in limbs from the start.
fn in_limbs(values: &[f64]) -> ExactSum {
    let mut sum = ExactSum::default();
    sum.spill();
    for &value in values {
        sum.add(value);
    }
    sum
}

proptest! {
    #[test]
    fn a_plain_sum_reads_as_the_same_sum_kept_in_limbs(
        values in mostly_exact(),
        split in any::<prop::sample::Index>(),
        count in 1u64..50,
    ) {
        let reference = in_limbs(&values);
        let mut whole = ExactSum::default();
        for &value in &values {
            whole.add(value);
        }
        // Split in two and merged, and with the second part retracted again.
        let at = split.index(values.len() + 1);
        let (mut left, right) = (sum_of(&values[..at]), sum_of(&values[at..]));
        left.merge(&right);
        let mut retracted = left.clone();
        retracted.retract(&right);
        let bits = |sum: &ExactSum| (sum.to_f64().to_bits(), sum.to_f32().to_bits(), sum.mean(count).to_bits());
        prop_assert_eq!(bits(&whole), bits(&reference));
        prop_assert_eq!(bits(&left), bits(&reference));
        prop_assert_eq!(bits(&retracted), bits(&in_limbs(&values[..at])));
        prop_assert_eq!(whole.to_f64(), fsum(&values));
        // A plain sum survives a snapshot.
        let stored = bincode::serialize(&whole).expect("serialised");
        let restored: ExactSum = bincode::deserialize(&stored).expect("restored");
        prop_assert_eq!(bits(&restored), bits(&reference));
    }
}
