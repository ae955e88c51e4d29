//! Aggregators: how a window folds its records into a result.
//!
//! An [`Aggregator`] is the `init / add / merge / finish` quadruple of Flink's
//! `AggregateFunction` and Spark's `Aggregator`: windows keep one accumulator per key, add each
//! record to it, merge accumulators when session windows merge, and finish them when the window
//! closes. Several aggregates run at once as a tuple: `(Count, Sum::of(..), Avg::of(..))`.

mod builtin;
mod exact_sum;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use builtin::{Avg, Count, Max, Min, Sum, Summable};
pub use exact_sum::ExactSum;

/// Folds records of type `In` into an accumulator and finishes it into an output.
///
/// # Examples
/// A user-defined aggregate, the range (max - min) of a field:
/// ```
/// use tideflow_operators::Aggregator;
///
/// struct Range;
/// impl Aggregator<i64> for Range {
///     type Acc = Option<(i64, i64)>;
///     type Output = i64;
///     fn init(&self) -> Self::Acc { None }
///     fn add(&self, acc: &mut Self::Acc, x: &i64) {
///         let (lo, hi) = acc.unwrap_or((*x, *x));
///         *acc = Some((lo.min(*x), hi.max(*x)));
///     }
///     fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
///         if let Some((lo, hi)) = other { self.add(acc, &lo); self.add(acc, &hi); }
///     }
///     fn finish(&self, acc: &Self::Acc) -> i64 { acc.map_or(0, |(lo, hi)| hi - lo) }
/// }
///
/// let mut acc = Range.init();
/// for x in [4, -2, 9] { Range.add(&mut acc, &x); }
/// assert_eq!(Range.finish(&acc), 11);
/// ```
pub trait Aggregator<In: ?Sized>: 'static {
    /// The running state of one key in one window. It is operator state, so it is
    /// serializable: snapshots save it (DESIGN.md "Snapshots"), and with several workers the
    /// accumulators of each worker's records cross to the key's worker (`window::fold`).
    type Acc: Clone + Serialize + DeserializeOwned + Send + 'static;
    /// The result of one key in one window.
    type Output: Clone + Serialize + DeserializeOwned + 'static;
    /// A fresh accumulator, before any record.
    fn init(&self) -> Self::Acc;
    /// Adds one record.
    fn add(&self, acc: &mut Self::Acc, input: &In);
    /// Adds everything `other` has seen: the result must be what adding `other`'s records
    /// would have given, in any order. Session windows merge this way, and windows over
    /// several workers merge each worker's accumulators of a key (`window::fold`).
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The result for the records added so far.
    fn finish(&self, acc: &Self::Acc) -> Self::Output;

    /// Whether [`retract`](Self::retract) can undo a [`merge`](Self::merge), as for count, sum
    /// and average (not for min or max). Sliding windows of an invertible aggregate update each
    /// key's running result in O(1) per slide instead of re-merging the window's panes (the
    /// `reduceByKeyAndWindow(f, f_inverse)` idea). By default, `false`.
    fn invertible(&self) -> bool {
        false
    }

    /// Removes from `acc` what `other` added to it: `merge(a, b)` then `retract(a, &b)` leaves
    /// `a` as it was. Called only when [`invertible`](Self::invertible) is `true`.
    ///
    /// # Panics
    /// By default, always: an aggregate that says it is invertible must implement this.
    fn retract(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        let _ = (acc, other);
        panic!("Aggregator::retract called on an aggregate that is not invertible");
    }
}

macro_rules! tuple_aggregator {
    ($($name:ident $index:tt),+) => {
        impl<In: ?Sized, $($name: Aggregator<In>),+> Aggregator<In> for ($($name,)+) {
            type Acc = ($($name::Acc,)+);
            type Output = ($($name::Output,)+);
            fn init(&self) -> Self::Acc {
                ($(self.$index.init(),)+)
            }
            #[inline]
            fn add(&self, acc: &mut Self::Acc, input: &In) {
                $(self.$index.add(&mut acc.$index, input);)+
            }
            fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
                $(self.$index.merge(&mut acc.$index, other.$index);)+
            }
            fn finish(&self, acc: &Self::Acc) -> Self::Output {
                ($(self.$index.finish(&acc.$index),)+)
            }
            fn invertible(&self) -> bool {
                true $(&& self.$index.invertible())+
            }
            fn retract(&self, acc: &mut Self::Acc, other: &Self::Acc) {
                $(self.$index.retract(&mut acc.$index, &other.$index);)+
            }
        }
    };
}

tuple_aggregator!(A 0);
tuple_aggregator!(A 0, B 1);
tuple_aggregator!(A 0, B 1, C 2);
tuple_aggregator!(A 0, B 1, C 2, D 3);
tuple_aggregator!(A 0, B 1, C 2, D 3, E 4);
tuple_aggregator!(A 0, B 1, C 2, D 3, E 4, F 5);
