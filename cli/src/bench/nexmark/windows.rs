//! The NEXMark queries over windows of bids: q5 (hot items: a sliding count, then the top
//! counts of each window), q7 (highest bid: a tumbling max joined back to the bids) and q11
//! (user sessions).
//!
//! Flink runs q5's and q7's joins as regular joins of a window aggregate with another stream.
//! Tideflow expresses both as window aggregates that keep what the join would select:
//!
//! - q5 joins each window's per-auction counts with the window's maximum count
//!   (`num >= maxn`): a second window aggregate, keyed by the window, keeps the maximum and
//!   the auctions that reach it.
//! - q7 joins every bid with every window's maximum price where the price is equal and the bid
//!   lies in `[window_end - 10 s, window_end]`: that is the bid's own window, and also the one
//!   before when the bid is exactly at its window's start. A tumbling aggregate keeps, per
//!   window, the maximum price, the bids at it, and the bids at the window's start (two
//!   stages: 128 shards by price, then one per window); a `map_with_state` over the windows in
//!   order pairs the bids at a window's start with the previous window's maximum.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tideflow::aggregate::{Aggregator, Count};
use tideflow::{Error, StateInput, Stream, Window, WindowResult};

use super::event::Event;
use super::TEN_SECONDS;

/// A row of q5: an auction with the most bids in a window, and how many.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct HotItem {
    pub(crate) auction: u64,
    pub(crate) num: u64,
}

/// A row of q7 (a bid at a window's highest price), and a candidate for one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct HighestBid {
    pub(crate) auction: u64,
    pub(crate) price: u64,
    pub(crate) bidder: u64,
    pub(crate) date_time: u64,
    pub(crate) extra: Arc<str>,
}

/// A row of q11: one bidder's session and its bids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) bidder: u64,
    pub(crate) bid_count: u64,
    pub(crate) start_time: u64,
    pub(crate) end_time: u64,
}

/// Query 5, hot items:
///
/// ```sql
/// SELECT AuctionBids.auction, AuctionBids.num
///  FROM (
///    SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
///    FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
///    GROUP BY auction, window_start, window_end
///  ) AS AuctionBids
///  JOIN (
///    SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
///    FROM (
///      SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
///      FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
///      GROUP BY auction, window_start, window_end
///    ) AS CountBids
///    GROUP BY CountBids.starttime, CountBids.endtime
///  ) AS MaxBids
///  ON AuctionBids.starttime = MaxBids.starttime AND
///     AuctionBids.endtime = MaxBids.endtime AND
///     AuctionBids.num >= MaxBids.maxn;
/// ```
///
/// A window's counts carry event time `window_end - 1`, which lies in the 2 s tumbling window
/// that ends with it: keyed by the window's start, that tumbling window holds exactly the
/// window's counts.
pub(crate) fn q5(events: Stream<'_, Event>) -> Result<Stream<'_, HotItem>, Error> {
    let slide = Duration::from_secs(2);
    let rows = events
        .flat_map(|event| match event {
            Event::Bid(bid) => Some((bid.auction, ())),
            _ => None,
        })
        .into_keyed()
        .window(Window::sliding(TEN_SECONDS, slide)?)
        .aggregate(Count)
        .map(|count| (count.start, (count.key, count.value)))
        .into_keyed()
        .window(Window::tumbling(slide)?)
        .aggregate(MostBids)
        .flat_map(|window| {
            let (num, auctions) = window.value;
            auctions
                .into_iter()
                .map(move |auction| HotItem { auction, num })
        });
    Ok(rows)
}

/// q5's second aggregate: of `(auction, count)` pairs, the highest count and the auctions
/// that have it.
struct MostBids;

impl Aggregator<(u64, u64)> for MostBids {
    type Acc = (u64, Vec<u64>);
    type Output = (u64, Vec<u64>);

    fn init(&self) -> Self::Acc {
        (0, Vec::new())
    }

    fn add(&self, acc: &mut Self::Acc, &(auction, num): &(u64, u64)) {
        if num > acc.0 {
            acc.0 = num;
            acc.1.clear();
        }
        if num == acc.0 {
            acc.1.push(auction);
        }
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        let (num, auctions) = other;
        for auction in auctions {
            self.add(acc, &(auction, num));
        }
    }

    fn finish(&self, acc: &Self::Acc) -> Self::Output {
        acc.clone()
    }
}

/// How many shards q7's first stage spreads a window's bids over.
const SHARDS: u64 = 128;

/// q7's tumbling windows, in ms.
const WINDOW_MS: u64 = 10_000;

/// Query 7, highest bid:
///
/// ```sql
/// SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra
/// from bid B
/// JOIN (
///   SELECT MAX(price) AS maxprice, window_end as dateTime
///   FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
///   GROUP BY window_start, window_end
/// ) B1
/// ON B.price = B1.maxprice
/// WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND B1.dateTime;
/// ```
pub(crate) fn q7(events: Stream<'_, Event>) -> Result<Stream<'_, HighestBid>, Error> {
    let window = Window::tumbling(TEN_SECONDS)?;
    let rows = events
        .flat_map(|event| match event {
            Event::Bid(bid) => Some((
                bid.price % SHARDS,
                HighestBid {
                    auction: bid.auction,
                    price: bid.price,
                    bidder: bid.bidder,
                    date_time: bid.date_time,
                    extra: bid.extra,
                },
            )),
            _ => None,
        })
        .into_keyed()
        .window(window)
        .aggregate(TopBids)
        .map(|shard| (shard.start, shard.value))
        .into_keyed()
        .window(window)
        .aggregate(TopBids)
        .map(|window| ((), window))
        .into_keyed()
        .map_with_state(|_, input, previous: &mut Option<(u64, u64)>, context| {
            let StateInput::Records(windows) = input else {
                return;
            };
            for window in windows {
                let WindowResult {
                    start, end, value, ..
                } = window.data;
                if let Some((previous_end, previous_max)) = *previous {
                    if previous_end == start {
                        let at_start = value.at_start.iter();
                        for bid in at_start.filter(|bid| bid.price == previous_max) {
                            context.emit(bid.clone());
                        }
                    }
                }
                *previous = value.max.map(|max| (end, max));
                for bid in value.at_max {
                    context.emit(bid);
                }
            }
        });
    Ok(rows)
}

/// What q7 keeps of a window's bids: the highest price, the bids at it, and the bids at the
/// window's start (which also join the previous window's highest price).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct TopBidsOf {
    max: Option<u64>,
    at_max: Vec<HighestBid>,
    at_start: Vec<HighestBid>,
}

impl TopBidsOf {
    fn offer(&mut self, bid: &HighestBid) {
        if self.max < Some(bid.price) {
            self.max = Some(bid.price);
            self.at_max.clear();
        }
        if self.max == Some(bid.price) {
            self.at_max.push(bid.clone());
        }
    }

    fn merge(&mut self, other: TopBidsOf) {
        if other.max > self.max {
            self.max = other.max;
            self.at_max = other.at_max;
        } else if other.max == self.max {
            self.at_max.extend(other.at_max);
        }
        self.at_start.extend(other.at_start);
    }
}

/// q7's window aggregate, over bids (per shard) and over shards' results (per window).
struct TopBids;

impl Aggregator<HighestBid> for TopBids {
    type Acc = TopBidsOf;
    type Output = TopBidsOf;

    fn init(&self) -> TopBidsOf {
        TopBidsOf::default()
    }

    fn add(&self, acc: &mut TopBidsOf, bid: &HighestBid) {
        acc.offer(bid);
        if bid.date_time.is_multiple_of(WINDOW_MS) {
            acc.at_start.push(bid.clone());
        }
    }

    fn merge(&self, acc: &mut TopBidsOf, other: TopBidsOf) {
        acc.merge(other);
    }

    fn finish(&self, acc: &TopBidsOf) -> TopBidsOf {
        acc.clone()
    }
}

impl Aggregator<TopBidsOf> for TopBids {
    type Acc = TopBidsOf;
    type Output = TopBidsOf;

    fn init(&self) -> TopBidsOf {
        TopBidsOf::default()
    }

    fn add(&self, acc: &mut TopBidsOf, shard: &TopBidsOf) {
        acc.merge(shard.clone());
    }

    fn merge(&self, acc: &mut TopBidsOf, other: TopBidsOf) {
        acc.merge(other);
    }

    fn finish(&self, acc: &TopBidsOf) -> TopBidsOf {
        acc.clone()
    }
}

/// Query 11, user sessions:
///
/// ```sql
/// SELECT B.bidder, count(*) as bid_count,
///     SESSION_START(B.dateTime, INTERVAL '10' SECOND) as starttime,
///     SESSION_END(B.dateTime, INTERVAL '10' SECOND) as endtime
/// FROM bid B
/// GROUP BY B.bidder, SESSION(B.dateTime, INTERVAL '10' SECOND);
/// ```
pub(crate) fn q11(events: Stream<'_, Event>) -> Result<Stream<'_, Session>, Error> {
    let rows = events
        .flat_map(|event| match event {
            Event::Bid(bid) => Some((bid.bidder, ())),
            _ => None,
        })
        .into_keyed()
        .window(Window::session(TEN_SECONDS)?)
        .aggregate(Count)
        .map(|session| Session {
            bidder: session.key,
            bid_count: session.value,
            start_time: session.start,
            end_time: session.end,
        });
    Ok(rows)
}
