//! The NEXMark events of `tideflow bench nexmark`: the `nexmark` crate's generator (the
//! RisingWave port of the Java generator Flink's suite uses), run before the clock starts, its
//! events kept in memory in a compact form.
//!
//! The form keeps every field of every event. Strings are shared (`Arc<str>`) and people and
//! auctions (8% of the events) are behind an `Arc`, so that an event is 64 bytes plus its
//! strings and reading one out of memory (a clone) costs reference counts, not allocations; a
//! bid's channel and URL, which the generator draws from a fixed table of about 10,000 pairs,
//! are one index into [`Events::channels`].

use std::collections::HashMap;
use std::sync::Arc;

use nexmark::config::NexmarkConfig;
use nexmark::event as generated;
use nexmark::EventGenerator;
use serde::{Deserialize, Serialize};

/// The event time of the first event: 2015-07-15T00:00:00Z, the base time of the Java
/// generator (a fixed time makes every run, and so every window, the same).
pub(crate) const BASE_TIME: u64 = 1_436_918_400_000;

/// One NEXMark event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Event {
    /// A new person (2% of the events).
    Person(Arc<Person>),
    /// A new auction (6%).
    Auction(Arc<Auction>),
    /// A bid (92%).
    Bid(Bid),
}

impl Event {
    /// The event time, ms since the epoch.
    pub(crate) fn date_time(&self) -> u64 {
        match self {
            Event::Person(person) => person.date_time,
            Event::Auction(auction) => auction.date_time,
            Event::Bid(bid) => bid.date_time,
        }
    }
}

/// A person who sells or bids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Person {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) email_address: Arc<str>,
    pub(crate) credit_card: Arc<str>,
    pub(crate) city: Arc<str>,
    /// A US state as the generator writes it: two lower-case letters (`or`).
    pub(crate) state: Arc<str>,
    pub(crate) date_time: u64,
    pub(crate) extra: Arc<str>,
}

/// An item put up for auction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Auction {
    pub(crate) id: u64,
    pub(crate) item_name: Arc<str>,
    pub(crate) description: Arc<str>,
    pub(crate) initial_bid: u64,
    pub(crate) reserve: u64,
    pub(crate) date_time: u64,
    /// When the auction closes, ms since the epoch.
    pub(crate) expires: u64,
    /// The person who sells.
    pub(crate) seller: u64,
    pub(crate) category: u64,
    pub(crate) extra: Arc<str>,
}

/// A bid on an auction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Bid {
    pub(crate) auction: u64,
    pub(crate) bidder: u64,
    /// In cents.
    pub(crate) price: u64,
    /// The (channel, URL) pair: an index into [`Events::channels`].
    pub(crate) channel: u32,
    pub(crate) date_time: u64,
    pub(crate) extra: Arc<str>,
}

/// Events generated before a run, shared by its workers, and the table of bid channels.
pub(crate) struct Events {
    /// The events in generator order (event time never decreases).
    pub(crate) events: Arc<Vec<Event>>,
    /// Each bid channel and its URL, as `Bid::channel` indexes them.
    pub(crate) channels: Vec<(String, String)>,
}

impl Events {
    /// `count` events from the generator with event times `1 / rate` seconds apart from
    /// [`BASE_TIME`] (the generator's `first_rate` and `next_rate`), the other settings the
    /// generator's defaults (the proportions 1 : 3 : 46 of people, auctions and bids). Uses
    /// `threads` threads, each generating every `threads`-th event.
    pub(crate) fn generate(count: usize, rate: usize, threads: usize) -> Events {
        let config = NexmarkConfig {
            first_rate: rate,
            next_rate: rate,
            base_time: BASE_TIME,
            ..NexmarkConfig::default()
        };
        let threads = threads.clamp(1, count.max(1));
        let parts: Vec<Events> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|thread| {
                    let generator = EventGenerator::new(config.clone())
                        .with_offset(thread as u64)
                        .with_step(threads as u64);
                    let take = count / threads + usize::from(thread < count % threads);
                    scope.spawn(move || Events::convert(generator.take(take)))
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| match handle.join() {
                    Ok(part) => part,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        // One table for all threads: each thread's indexes are renumbered into it.
        let mut channels = Channels::default();
        let renumbered: Vec<Vec<u32>> = parts
            .iter()
            .map(|part| {
                part.channels
                    .iter()
                    .map(|(channel, url)| channels.index(channel.clone(), url.clone()))
                    .collect()
            })
            .collect();
        let mut parts: Vec<_> = parts
            .into_iter()
            .map(|part| Arc::unwrap_or_clone(part.events).into_iter())
            .collect();
        let mut events = Vec::with_capacity(count);
        for i in 0..count {
            let thread = i % threads;
            let Some(mut event) = parts[thread].next() else {
                break;
            };
            if let Event::Bid(bid) = &mut event {
                bid.channel = renumbered[thread][bid.channel as usize];
            }
            events.push(event);
        }
        Events {
            events: Arc::new(events),
            channels: channels.table,
        }
    }

    /// `generated`'s events in their compact form, with their own table of channels.
    fn convert(generated: impl Iterator<Item = generated::Event>) -> Events {
        let mut channels = Channels::default();
        let events = generated
            .map(|event| convert(event, &mut channels))
            .collect();
        Events {
            events: Arc::new(events),
            channels: channels.table,
        }
    }

    /// The bytes of field data the events carry: 8 per number, each string's length.
    pub(crate) fn field_bytes(&self) -> u64 {
        let strings = |fields: &[&str]| fields.iter().map(|s| s.len() as u64).sum::<u64>();
        self.events
            .iter()
            .map(|event| match event {
                Event::Person(p) => {
                    8 * 2
                        + strings(&[
                            &p.name,
                            &p.email_address,
                            &p.credit_card,
                            &p.city,
                            &p.state,
                            &p.extra,
                        ])
                }
                Event::Auction(a) => 8 * 7 + strings(&[&*a.item_name, &*a.description, &*a.extra]),
                Event::Bid(b) => {
                    let (channel, url) = &self.channels[b.channel as usize];
                    8 * 4 + strings(&[channel, url, &*b.extra])
                }
            })
            .sum()
    }
}

/// Interns (channel, URL) pairs.
#[derive(Default)]
struct Channels {
    table: Vec<(String, String)>,
    indexes: HashMap<(String, String), u32>,
}

impl Channels {
    fn index(&mut self, channel: String, url: String) -> u32 {
        let next = self.table.len() as u32;
        *self
            .indexes
            .entry((channel, url))
            .or_insert_with_key(|pair| {
                self.table.push(pair.clone());
                next
            })
    }
}

/// The compact form of a generated event.
fn convert(event: generated::Event, channels: &mut Channels) -> Event {
    match event {
        generated::Event::Person(p) => Event::Person(Arc::new(Person {
            id: p.id as u64,
            name: p.name.into(),
            email_address: p.email_address.into(),
            credit_card: p.credit_card.into(),
            city: p.city.into(),
            state: p.state.into(),
            date_time: p.date_time,
            extra: p.extra.into(),
        })),
        generated::Event::Auction(a) => Event::Auction(Arc::new(Auction {
            id: a.id as u64,
            item_name: a.item_name.into(),
            description: a.description.into(),
            initial_bid: a.initial_bid as u64,
            reserve: a.reserve as u64,
            date_time: a.date_time,
            expires: a.expires,
            seller: a.seller as u64,
            category: a.category as u64,
            extra: a.extra.into(),
        })),
        generated::Event::Bid(b) => Event::Bid(Bid {
            auction: b.auction as u64,
            bidder: b.bidder as u64,
            price: b.price as u64,
            channel: channels.index(b.channel, b.url),
            date_time: b.date_time,
            extra: b.extra.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator's events, converted, read back field by field.
    fn back(events: &Events, event: &Event) -> generated::Event {
        match event.clone() {
            Event::Person(p) => generated::Event::Person(generated::Person {
                id: p.id as usize,
                name: p.name.to_string(),
                email_address: p.email_address.to_string(),
                credit_card: p.credit_card.to_string(),
                city: p.city.to_string(),
                state: p.state.to_string(),
                date_time: p.date_time,
                extra: p.extra.to_string(),
            }),
            Event::Auction(a) => generated::Event::Auction(generated::Auction {
                id: a.id as usize,
                item_name: a.item_name.to_string(),
                description: a.description.to_string(),
                initial_bid: a.initial_bid as usize,
                reserve: a.reserve as usize,
                date_time: a.date_time,
                expires: a.expires,
                seller: a.seller as usize,
                category: a.category as usize,
                extra: a.extra.to_string(),
            }),
            Event::Bid(b) => {
                let (channel, url) = events.channels[b.channel as usize].clone();
                generated::Event::Bid(generated::Bid {
                    auction: b.auction as usize,
                    bidder: b.bidder as usize,
                    price: b.price as usize,
                    channel,
                    url,
                    date_time: b.date_time,
                    extra: b.extra.to_string(),
                })
            }
        }
    }

    #[test]
    fn generated_events_keep_every_field_in_order_whatever_the_threads() {
        let config = NexmarkConfig {
            first_rate: 1_000,
            next_rate: 1_000,
            base_time: BASE_TIME,
            ..NexmarkConfig::default()
        };
        let expected: Vec<generated::Event> = EventGenerator::new(config).take(2_003).collect();
        for threads in [1, 3] {
            let events = Events::generate(2_003, 1_000, threads);
            let read: Vec<generated::Event> =
                events.events.iter().map(|e| back(&events, e)).collect();
            assert_eq!(read, expected, "{threads} threads");
        }
        // The queries' granularity relies on it: each partition is in event-time order.
        let events = Events::generate(20_000, 10_000_000, 2);
        assert!(events
            .events
            .windows(2)
            .all(|pair| pair[0].date_time() <= pair[1].date_time()));
        assert_eq!(std::mem::size_of::<Event>(), 64);
    }
}
