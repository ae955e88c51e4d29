//! The container builder of the stateful operators' outputs: [`GrowingBuilder`].
//!
//! timely's `CapacityContainerBuilder` reserves a full buffer (8 KiB) for the first record of
//! each message. A window operator closing many windows at once sends one message per distinct
//! result time (a session's `end - 1`, say), often of one or two rows, and all of them wait in
//! the channel until the next operator runs: 865,000 sessions closing at the end of the input
//! held 1.9 GB of mostly empty buffers that way. [`GrowingBuilder`] lets each message's vector
//! grow as rows arrive, doubling from one row (`Vec` would start at four) up to the same 8 KiB,
//! so that a message holds at most twice the bytes of its rows.

use std::collections::VecDeque;

use timely::container::{ContainerBuilder, LengthPreservingContainerBuilder, PushInto};

/// Builds `Vec<T>` messages of up to timely's preferred capacity, each allocated as it grows
/// rather than at its full size up front. FIFO, like `CapacityContainerBuilder`.
pub struct GrowingBuilder<T> {
    /// The message being written.
    current: Vec<T>,
    /// The message handed out last (the caller takes its contents).
    shipped: Vec<T>,
    /// Full messages waiting to be handed out.
    pending: VecDeque<Vec<T>>,
}

impl<T> Default for GrowingBuilder<T> {
    fn default() -> Self {
        GrowingBuilder {
            current: Vec::new(),
            shipped: Vec::new(),
            pending: VecDeque::new(),
        }
    }
}

impl<T> GrowingBuilder<T> {
    /// timely's preferred message length for `T`: 8 KiB of them.
    const FULL: usize = timely::container::buffer::default_capacity::<T>();
}

impl<T> PushInto<T> for GrowingBuilder<T> {
    #[inline]
    fn push_into(&mut self, item: T) {
        if self.current.len() == self.current.capacity() {
            let room = self.current.len().clamp(1, Self::FULL - self.current.len());
            self.current.reserve_exact(room);
        }
        self.current.push(item);
        if self.current.len() >= Self::FULL {
            self.pending.push_back(std::mem::take(&mut self.current));
        }
    }
}

impl<T: 'static> ContainerBuilder for GrowingBuilder<T> {
    type Container = Vec<T>;

    #[inline]
    fn extract(&mut self) -> Option<&mut Vec<T>> {
        self.shipped = self.pending.pop_front()?;
        Some(&mut self.shipped)
    }

    #[inline]
    fn finish(&mut self) -> Option<&mut Vec<T>> {
        if !self.current.is_empty() {
            self.pending.push_back(std::mem::take(&mut self.current));
        }
        self.extract()
    }

    #[inline]
    fn relax(&mut self) {
        // A buffer handed back by the channel may be of any size: let it go.
        self.shipped = Vec::new();
    }
}

impl<T: 'static> LengthPreservingContainerBuilder for GrowingBuilder<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_grow_with_their_rows_and_keep_their_order() {
        let mut builder = GrowingBuilder::<u64>::default();
        builder.push_into(1);
        builder.push_into(2);
        let message = builder.finish().expect("a message");
        assert_eq!(*message, vec![1, 2]);
        assert_eq!(message.capacity(), 2);
        message.clear();
        assert!(builder.finish().is_none());
        let full = GrowingBuilder::<u64>::FULL as u64;
        for x in 0..full + 1 {
            builder.push_into(x);
        }
        let first = std::mem::take(builder.extract().expect("a full message"));
        assert_eq!(first, (0..full).collect::<Vec<_>>());
        assert!(builder.extract().is_none());
        assert_eq!(*builder.finish().expect("the rest"), vec![full]);
    }
}
