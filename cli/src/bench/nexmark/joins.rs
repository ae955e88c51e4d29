//! The NEXMark queries that join people or auctions: q3 (an unbounded regular join), q4 (a
//! join bounded by each auction's lifetime, then two updating aggregates) and q8 (a window
//! join).
//!
//! Flink runs q3 and q4 as regular joins, which keep both inputs for ever, and q4's
//! aggregates as changelogs (`-U`/`+U` rows). Tideflow expresses each join as one
//! `map_with_state` over the union of the two inputs, keyed by the join key:
//!
//! - q3 keeps, per seller, the people and auctions that passed the filters, for ever (as
//!   Flink does), and emits each pair when its second half arrives.
//! - q4 keeps an auction only until the watermark passes its `expires`: its join condition
//!   (`B.dateTime BETWEEN A.dateTime AND A.expires`) admits no later bid, so a timer there
//!   emits the auction's winning price once, final. Its per-category average is then a
//!   running aggregate, a changelog of retractions and insertions; upserting it on the
//!   category gives Flink's result table.
//! - q8 is a window join: both sides are 10 s tumbling windows grouped by the join key, so
//!   one window aggregate over their union, keyed by person id, holds both.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tideflow::aggregate::{Aggregator, Count, Sum};
use tideflow::{Change, Error, StateInput, Stream, Window};

use super::event::Event;
use super::TEN_SECONDS;

/// A row of q3: a seller and one of the auctions they opened.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct LocalItem {
    pub(crate) name: Arc<str>,
    pub(crate) city: Arc<str>,
    pub(crate) state: Arc<str>,
    pub(crate) id: u64,
}

/// A row of q4's changelog: a category's average winning price (`AVG` of `BIGINT`, truncated
/// as Flink's), inserted or retracted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct CategoryPrice {
    pub(crate) category: u64,
    pub(crate) average: u64,
    pub(crate) change: Change,
}

/// A row of q8: a person who opened an auction in the window they joined in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct NewSeller {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    /// The window's start, ms since the epoch.
    pub(crate) start_time: u64,
}

/// The two inputs of q3's join, keyed by the seller's id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum SellerSide {
    Person(Seller),
    Auction(u64),
}

/// The columns q3 keeps of a person.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Seller {
    name: Arc<str>,
    city: Arc<str>,
    state: Arc<str>,
}

/// One seller's side of q3's join: every person and auction with its id so far.
#[derive(Default, Serialize, Deserialize)]
struct SellerJoin {
    people: Vec<Seller>,
    auctions: Vec<u64>,
}

/// Query 3, local item suggestion:
///
/// ```sql
/// SELECT P.name, P.city, P.state, A.id
/// FROM auction AS A INNER JOIN person AS P on A.seller = P.id
/// WHERE A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
/// ```
///
/// The `nexmark` crate writes states in lower case (`or`), where the Java generator writes
/// `OR`: the filter compares with the codes as this generator writes them (as RisingWave's q3
/// does), or it would select nobody.
pub(crate) fn q3(events: Stream<'_, Event>) -> Result<Stream<'_, LocalItem>, Error> {
    let rows = events
        .flat_map(|event| match event {
            Event::Person(person) if matches!(&*person.state, "or" | "id" | "ca") => {
                let seller = Seller {
                    name: Arc::clone(&person.name),
                    city: Arc::clone(&person.city),
                    state: Arc::clone(&person.state),
                };
                Some((person.id, SellerSide::Person(seller)))
            }
            Event::Auction(auction) if auction.category == 10 => {
                Some((auction.seller, SellerSide::Auction(auction.id)))
            }
            _ => None,
        })
        .into_keyed()
        .map_with_state(|_, input, state: &mut Option<SellerJoin>, context| {
            let StateInput::Records(records) = input else {
                return;
            };
            let join = state.get_or_insert_with(SellerJoin::default);
            for record in records {
                match record.data {
                    SellerSide::Person(person) => {
                        for &id in &join.auctions {
                            context.emit(local_item(&person, id));
                        }
                        join.people.push(person);
                    }
                    SellerSide::Auction(id) => {
                        for person in &join.people {
                            context.emit(local_item(person, id));
                        }
                        join.auctions.push(id);
                    }
                }
            }
        });
    Ok(rows)
}

fn local_item(person: &Seller, id: u64) -> LocalItem {
    LocalItem {
        name: Arc::clone(&person.name),
        city: Arc::clone(&person.city),
        state: Arc::clone(&person.state),
        id,
    }
}

/// The two inputs of q4's join, keyed by the auction's id. An auction sorts before the bids
/// of its own stamp.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum AuctionSide {
    Auction { category: u64, expires: u64 },
    Bid { price: u64 },
}

/// An auction of q4 until it expires, and its highest bid so far.
#[derive(Serialize, Deserialize)]
struct OpenAuction {
    category: u64,
    opened: u64,
    expires: u64,
    highest: Option<u64>,
}

/// Query 4, average price for a category:
///
/// ```sql
/// SELECT Q.category, AVG(Q.final)
/// FROM (
///     SELECT MAX(B.price) AS final, A.category
///     FROM auction A, bid B
///     WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
///     GROUP BY A.id, A.category
/// ) Q
/// GROUP BY Q.category;
/// ```
///
/// Auction ids are unique, so an auction's state is its one row of `auction`; a bid that finds
/// no open auction of its id (the generator bids on auctions up to ten ids ahead) joins
/// nothing, since the stream is in event-time order and any auction it could join opened at
/// or before its stamp.
pub(crate) fn q4(events: Stream<'_, Event>) -> Result<Stream<'_, CategoryPrice>, Error> {
    let mut bids: Vec<(u64, u64)> = Vec::new();
    let rows = events
        .flat_map(|event| match event {
            Event::Auction(auction) => Some((
                auction.id,
                AuctionSide::Auction {
                    category: auction.category,
                    expires: auction.expires,
                },
            )),
            Event::Bid(bid) => Some((bid.auction, AuctionSide::Bid { price: bid.price })),
            Event::Person(_) => None,
        })
        .into_keyed()
        .map_with_state(
            move |_, input, state: &mut Option<OpenAuction>, context| match input {
                StateInput::Records(records) => {
                    bids.clear();
                    for record in records {
                        match record.data {
                            AuctionSide::Auction { category, expires } => {
                                *state = Some(OpenAuction {
                                    category,
                                    opened: record.time,
                                    expires,
                                    highest: None,
                                });
                                context.set_timer(expires);
                            }
                            AuctionSide::Bid { price } => bids.push((record.time, price)),
                        }
                    }
                    if let Some(open) = state {
                        for &(time, price) in &bids {
                            if open.opened <= time && time <= open.expires {
                                open.highest = open.highest.max(Some(price));
                            }
                        }
                    }
                }
                StateInput::Timer(_) => {
                    if let Some(OpenAuction {
                        category,
                        highest: Some(price),
                        ..
                    }) = state.take()
                    {
                        context.emit((category, price));
                    }
                }
                StateInput::Expired => {}
            },
        )
        .into_keyed()
        .running_aggregate((Sum::of(|price: &u64| *price), Count))
        .map(|row| CategoryPrice {
            category: row.key,
            average: row.value.0 / row.value.1,
            change: row.change,
        });
    Ok(rows)
}

/// The two inputs of q8's window join, keyed by the person's id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum SellerWindowSide {
    Person { name: Arc<str> },
    Auction,
}

/// q8's window aggregate: the distinct names of the people who joined with the key's id (the
/// `GROUP BY id, name` side) and whether the id opened an auction (the `GROUP BY seller`
/// side); its result is the names that join.
struct NewSellers;

impl Aggregator<SellerWindowSide> for NewSellers {
    /// The names, sorted and distinct, and whether an auction came.
    type Acc = (Vec<Arc<str>>, bool);
    /// The names that join: none unless an auction came.
    type Output = Vec<Arc<str>>;

    fn init(&self) -> Self::Acc {
        (Vec::new(), false)
    }

    fn add(&self, acc: &mut Self::Acc, input: &SellerWindowSide) {
        match input {
            SellerWindowSide::Person { name } => {
                if let Err(position) = acc.0.binary_search(name) {
                    acc.0.insert(position, Arc::clone(name));
                }
            }
            SellerWindowSide::Auction => acc.1 = true,
        }
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        for name in other.0 {
            self.add(acc, &SellerWindowSide::Person { name });
        }
        acc.1 |= other.1;
    }

    fn finish(&self, acc: &Self::Acc) -> Vec<Arc<str>> {
        match acc.1 {
            true => acc.0.clone(),
            false => Vec::new(),
        }
    }
}

/// Query 8, monitor new users:
///
/// ```sql
/// SELECT P.id, P.name, P.starttime
/// FROM (
///   SELECT id, name, window_start AS starttime, window_end AS endtime
///   FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
///   GROUP BY id, name, window_start, window_end
/// ) P
/// JOIN (
///   SELECT seller, window_start AS starttime, window_end AS endtime
///   FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
///   GROUP BY seller, window_start, window_end
/// ) A
/// ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
/// ```
pub(crate) fn q8(events: Stream<'_, Event>) -> Result<Stream<'_, NewSeller>, Error> {
    let rows = events
        .flat_map(|event| match event {
            Event::Person(person) => {
                let name = Arc::clone(&person.name);
                Some((person.id, SellerWindowSide::Person { name }))
            }
            Event::Auction(auction) => Some((auction.seller, SellerWindowSide::Auction)),
            Event::Bid(_) => None,
        })
        .into_keyed()
        .window(Window::tumbling(TEN_SECONDS)?)
        .aggregate(NewSellers)
        .flat_map(|window| {
            let (id, start_time) = (window.key, window.start);
            window.value.into_iter().map(move |name| NewSeller {
                id,
                name,
                start_time,
            })
        });
    Ok(rows)
}
