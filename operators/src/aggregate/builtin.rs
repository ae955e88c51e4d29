//! The built-in aggregates: count, sum, min, max and average of a field.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;

use super::{Aggregator, ExactSum};

/// Counts records.
///
/// # Examples
/// ```
/// use tideflow_operators::aggregate::{Aggregator, Count};
/// let mut acc = Aggregator::<&str>::init(&Count);
/// Count.add(&mut acc, &"a");
/// Count.add(&mut acc, &"b");
/// assert_eq!(Aggregator::<&str>::finish(&Count, &acc), 2);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Count;

impl<In: ?Sized> Aggregator<In> for Count {
    type Acc = u64;
    type Output = u64;
    fn init(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, acc: &mut u64, _input: &In) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
    fn finish(&self, acc: &u64) -> u64 {
        *acc
    }
    fn invertible(&self) -> bool {
        true
    }
    fn retract(&self, acc: &mut u64, other: &u64) {
        *acc -= other;
    }
}

/// A value [`Sum`] can add. Integers add as themselves; floats add exactly (an [`ExactSum`],
/// rounded once when the sum is read), so a float sum is the same bits whatever order records
/// arrive in and however windows and workers split and merge it.
pub trait Summable: Copy + 'static {
    /// What a running sum keeps.
    type Acc: Clone + Default + Serialize + DeserializeOwned + Send + 'static;
    /// Adds `self` to `acc`.
    fn add_to(self, acc: &mut Self::Acc);
    /// Adds everything `other` holds to `acc`.
    fn merge(acc: &mut Self::Acc, other: &Self::Acc);
    /// Removes from `acc` what `other` added to it.
    fn retract(acc: &mut Self::Acc, other: &Self::Acc);
    /// The sum.
    fn total(acc: &Self::Acc) -> Self;
}

macro_rules! summable_integers {
    ($($int:ty),+) => {$(
        impl Summable for $int {
            type Acc = $int;
            #[inline]
            fn add_to(self, acc: &mut $int) {
                *acc += self;
            }
            fn merge(acc: &mut $int, other: &$int) {
                *acc += *other;
            }
            fn retract(acc: &mut $int, other: &$int) {
                *acc -= *other;
            }
            fn total(acc: &$int) -> $int {
                *acc
            }
        }
    )+};
}

summable_integers!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl Summable for f64 {
    type Acc = ExactSum;
    #[inline]
    fn add_to(self, acc: &mut ExactSum) {
        acc.add(self);
    }
    fn merge(acc: &mut ExactSum, other: &ExactSum) {
        acc.merge(other);
    }
    fn retract(acc: &mut ExactSum, other: &ExactSum) {
        acc.retract(other);
    }
    fn total(acc: &ExactSum) -> f64 {
        acc.to_f64()
    }
}

impl Summable for f32 {
    type Acc = ExactSum;
    #[inline]
    fn add_to(self, acc: &mut ExactSum) {
        acc.add(f64::from(self));
    }
    fn merge(acc: &mut ExactSum, other: &ExactSum) {
        acc.merge(other);
    }
    fn retract(acc: &mut ExactSum, other: &ExactSum) {
        acc.retract(other);
    }
    fn total(acc: &ExactSum) -> f32 {
        acc.to_f32()
    }
}

/// Sums a field of the record, read by a function: integers as themselves, floats exactly
/// ([`Summable`]).
///
/// # Examples
/// ```
/// use tideflow_operators::aggregate::{Aggregator, Sum};
/// let total = Sum::of(|order: &(String, i64)| order.1);
/// let mut acc = total.init();
/// total.add(&mut acc, &("a".into(), 5));
/// total.add(&mut acc, &("b".into(), -2));
/// assert_eq!(total.finish(&acc), 3);
///
/// // Floats do not lose what a plain running sum would: 1e16 + 1 - 1e16 is 1.
/// let exact = Sum::of(|x: &f64| *x);
/// let mut acc = exact.init();
/// for x in [1e16, 1.0, -1e16] { exact.add(&mut acc, &x); }
/// assert_eq!(exact.finish(&acc), 1.0);
/// ```
pub struct Sum<F, T> {
    field: F,
    _value: PhantomData<fn() -> T>,
}

impl<F, T> Sum<F, T> {
    /// The sum of `field(record)` over a window's records.
    pub fn of(field: F) -> Self {
        Sum {
            field,
            _value: PhantomData,
        }
    }
}

impl<In, F, T> Aggregator<In> for Sum<F, T>
where
    In: ?Sized,
    F: Fn(&In) -> T + 'static,
    T: Summable + Serialize + DeserializeOwned,
{
    type Acc = T::Acc;
    type Output = T;
    fn init(&self) -> T::Acc {
        T::Acc::default()
    }
    #[inline]
    fn add(&self, acc: &mut T::Acc, input: &In) {
        (self.field)(input).add_to(acc);
    }
    fn merge(&self, acc: &mut T::Acc, other: T::Acc) {
        T::merge(acc, &other);
    }
    fn finish(&self, acc: &T::Acc) -> T {
        T::total(acc)
    }
    fn invertible(&self) -> bool {
        true
    }
    fn retract(&self, acc: &mut T::Acc, other: &T::Acc) {
        T::retract(acc, other);
    }
}

/// The smallest value of a field (by `PartialOrd`; incomparable values such as NaN are skipped).
///
/// # Examples
/// ```
/// use tideflow_operators::aggregate::{Aggregator, Min};
/// let lowest = Min::of(|x: &f64| *x);
/// let mut acc = lowest.init();
/// for x in [2.5, -1.0, 7.0] { lowest.add(&mut acc, &x); }
/// assert_eq!(lowest.finish(&acc), Some(-1.0));
/// ```
pub struct Min<F, T> {
    field: F,
    _value: PhantomData<fn() -> T>,
}

impl<F, T> Min<F, T> {
    /// The minimum of `field(record)` over a window's records.
    pub fn of(field: F) -> Self {
        Min {
            field,
            _value: PhantomData,
        }
    }
}

/// The largest value of a field (by `PartialOrd`; incomparable values such as NaN are skipped).
///
/// # Examples
/// ```
/// use tideflow_operators::aggregate::{Aggregator, Max};
/// let highest = Max::of(|x: &u32| *x);
/// let mut acc = highest.init();
/// for x in [2, 9, 4] { highest.add(&mut acc, &x); }
/// assert_eq!(highest.finish(&acc), Some(9));
/// ```
pub struct Max<F, T> {
    field: F,
    _value: PhantomData<fn() -> T>,
}

impl<F, T> Max<F, T> {
    /// The maximum of `field(record)` over a window's records.
    pub fn of(field: F) -> Self {
        Max {
            field,
            _value: PhantomData,
        }
    }
}

/// Keeps `candidate` in `acc` when `better(candidate, current)` holds.
#[inline]
fn keep_extreme<T: PartialOrd + Copy>(
    acc: &mut Option<T>,
    candidate: T,
    better: impl Fn(&T, &T) -> bool,
) {
    match acc {
        Some(current) => {
            if better(&candidate, current) {
                *current = candidate;
            }
        }
        None => {
            // A value incomparable with itself (NaN) never becomes the extreme.
            if candidate.partial_cmp(&candidate).is_some() {
                *acc = Some(candidate);
            }
        }
    }
}

macro_rules! extreme_aggregator {
    ($name:ident, $better:expr) => {
        impl<In, F, T> Aggregator<In> for $name<F, T>
        where
            In: ?Sized,
            F: Fn(&In) -> T + 'static,
            T: PartialOrd + Copy + Serialize + DeserializeOwned + Send + 'static,
        {
            type Acc = Option<T>;
            /// `None` only when every value was incomparable (NaN).
            type Output = Option<T>;
            fn init(&self) -> Option<T> {
                None
            }
            #[inline]
            fn add(&self, acc: &mut Option<T>, input: &In) {
                keep_extreme(acc, (self.field)(input), $better);
            }
            fn merge(&self, acc: &mut Option<T>, other: Option<T>) {
                if let Some(value) = other {
                    keep_extreme(acc, value, $better);
                }
            }
            fn finish(&self, acc: &Option<T>) -> Option<T> {
                *acc
            }
        }
    };
}

extreme_aggregator!(Min, |candidate: &T, current: &T| candidate < current);
extreme_aggregator!(Max, |candidate: &T, current: &T| candidate > current);

/// The arithmetic mean of a numeric field, as `f64`: the exact sum divided by the count,
/// rounded once, so the same bits in any order ([`ExactSum`]).
///
/// # Examples
/// ```
/// use tideflow_operators::aggregate::{Aggregator, Avg};
/// let mean = Avg::of(|x: &i32| f64::from(*x));
/// let mut acc = mean.init();
/// for x in [1, 2, 6] { mean.add(&mut acc, &x); }
/// assert_eq!(mean.finish(&acc), 3.0);
/// ```
pub struct Avg<F> {
    field: F,
}

impl<F> Avg<F> {
    /// The mean of `field(record)` over a window's records.
    pub fn of(field: F) -> Self {
        Avg { field }
    }
}

impl<In, F> Aggregator<In> for Avg<F>
where
    In: ?Sized,
    F: Fn(&In) -> f64 + 'static,
{
    /// The exact sum and the count.
    type Acc = (ExactSum, u64);
    /// NaN over no records.
    type Output = f64;
    fn init(&self) -> (ExactSum, u64) {
        (ExactSum::default(), 0)
    }
    #[inline]
    fn add(&self, acc: &mut (ExactSum, u64), input: &In) {
        acc.0.add((self.field)(input));
        acc.1 += 1;
    }
    fn merge(&self, acc: &mut (ExactSum, u64), other: (ExactSum, u64)) {
        acc.0.merge(&other.0);
        acc.1 += other.1;
    }
    fn finish(&self, acc: &(ExactSum, u64)) -> f64 {
        acc.0.mean(acc.1)
    }
    fn invertible(&self) -> bool {
        true
    }
    fn retract(&self, acc: &mut (ExactSum, u64), other: &(ExactSum, u64)) {
        acc.0.retract(&other.0);
        acc.1 -= other.1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_and_max_skip_nan() {
        let min = Min::of(|x: &f64| *x);
        let mut acc = min.init();
        for x in [f64::NAN, 3.0, f64::NAN, 1.0] {
            min.add(&mut acc, &x);
        }
        assert_eq!(min.finish(&acc), Some(1.0));
        let max = Max::of(|x: &f64| *x);
        let mut acc = max.init();
        max.add(&mut acc, &f64::NAN);
        assert_eq!(max.finish(&acc), None);
    }

    #[test]
    fn tuple_merges_componentwise() {
        let agg = (Count, Sum::of(|x: &i64| *x), Avg::of(|x: &i64| *x as f64));
        let (mut left, mut right) = (agg.init(), agg.init());
        for x in [1, 2] {
            agg.add(&mut left, &x);
        }
        for x in [3, 6] {
            agg.add(&mut right, &x);
        }
        agg.merge(&mut left, right);
        assert_eq!(agg.finish(&left), (4, 12, 3.0));
    }

    #[test]
    fn float_sums_and_means_do_not_depend_on_order_or_merging() {
        let agg = (Sum::of(|x: &f64| *x), Avg::of(|x: &f64| *x));
        let values = [0.1, 1e20, 0.2, -1e20, 0.3, 1e-300, 7.0];
        let (mut forward, mut left, mut right) = (agg.init(), agg.init(), agg.init());
        for x in values {
            agg.add(&mut forward, &x);
        }
        for x in values.iter().rev().take(3) {
            agg.add(&mut left, x);
        }
        for x in values.iter().take(4) {
            agg.add(&mut right, x);
        }
        agg.merge(&mut left, right);
        let (sum, mean) = agg.finish(&forward);
        assert_eq!((sum, mean), agg.finish(&left));
        assert_eq!(sum, 7.6);
        assert!((mean - 7.6 / 7.0).abs() < 1e-15, "{mean}");
    }
}
