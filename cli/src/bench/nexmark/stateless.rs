//! The stateless NEXMark queries: q0 (pass-through), q1 (currency conversion) and q2
//! (selection), each a `flat_map` over the event stream that keeps the bids it selects.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tideflow::{Error, Stream};

use super::event::Event;

/// A row of q0 and of q1: a bid's columns. In q1 the price is in thousandths of a cent
/// (`0.908 * price`, a `DECIMAL(23, 3)` in Flink, exactly).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct BidRow {
    pub(crate) auction: u64,
    pub(crate) bidder: u64,
    pub(crate) price: u64,
    pub(crate) date_time: u64,
    pub(crate) extra: Arc<str>,
}

/// A row of q2.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct AuctionPrice {
    pub(crate) auction: u64,
    pub(crate) price: u64,
}

/// Query 0, pass-through: `SELECT auction, bidder, price, dateTime, extra FROM bid`.
pub(crate) fn q0(events: Stream<'_, Event>) -> Result<Stream<'_, BidRow>, Error> {
    Ok(bid_rows(events, |price| price))
}

/// Query 1, currency conversion: `SELECT auction, bidder, 0.908 * price AS price, dateTime,
/// extra FROM bid`, the price a decimal with three places: `price * 908` thousandths.
pub(crate) fn q1(events: Stream<'_, Event>) -> Result<Stream<'_, BidRow>, Error> {
    Ok(bid_rows(events, |price| price * 908))
}

/// Every bid's row, its price through `price`.
fn bid_rows(events: Stream<'_, Event>, price: fn(u64) -> u64) -> Stream<'_, BidRow> {
    events.flat_map(move |event| match event {
        Event::Bid(bid) => Some(BidRow {
            auction: bid.auction,
            bidder: bid.bidder,
            price: price(bid.price),
            date_time: bid.date_time,
            extra: bid.extra,
        }),
        _ => None,
    })
}

/// Query 2, selection: `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`.
pub(crate) fn q2(events: Stream<'_, Event>) -> Result<Stream<'_, AuctionPrice>, Error> {
    Ok(events.flat_map(|event| match event {
        Event::Bid(bid) if bid.auction % 123 == 0 => Some(AuctionPrice {
            auction: bid.auction,
            price: bid.price,
        }),
        _ => None,
    }))
}
