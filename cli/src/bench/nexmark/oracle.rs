//! From-scratch answers to the NEXMark queries: plain Rust over the whole event vector, each
//! query read straight off its SQL (`BTreeMap`s, no dataflow, no watermarks), for the tests to
//! compare the dataflows' rows with.

use std::collections::{BTreeMap, BTreeSet};

use super::event::{Bid, Event};
use super::joins::{LocalItem, NewSeller};
use super::stateless::{AuctionPrice, BidRow};
use super::windows::{HighestBid, HotItem, Session};

fn bids(events: &[Event]) -> impl Iterator<Item = &Bid> {
    events.iter().filter_map(|event| match event {
        Event::Bid(bid) => Some(bid),
        _ => None,
    })
}

fn sorted<T: Ord>(mut rows: Vec<T>) -> Vec<T> {
    rows.sort();
    rows
}

/// q0 and q1: every bid, its price multiplied by `factor` (1 or 908 thousandths).
pub(super) fn bid_rows(events: &[Event], factor: u64) -> Vec<BidRow> {
    sorted(
        bids(events)
            .map(|bid| BidRow {
                auction: bid.auction,
                bidder: bid.bidder,
                price: bid.price * factor,
                date_time: bid.date_time,
                extra: bid.extra.clone(),
            })
            .collect(),
    )
}

pub(super) fn q2(events: &[Event]) -> Vec<AuctionPrice> {
    sorted(
        bids(events)
            .filter(|bid| bid.auction % 123 == 0)
            .map(|bid| AuctionPrice {
                auction: bid.auction,
                price: bid.price,
            })
            .collect(),
    )
}

pub(super) fn q3(events: &[Event]) -> Vec<LocalItem> {
    let mut rows = Vec::new();
    for auction in events.iter().filter_map(|event| match event {
        Event::Auction(auction) if auction.category == 10 => Some(auction),
        _ => None,
    }) {
        for event in events {
            if let Event::Person(person) = event {
                let state = &*person.state;
                if person.id == auction.seller && (state == "or" || state == "id" || state == "ca")
                {
                    rows.push(LocalItem {
                        name: person.name.clone(),
                        city: person.city.clone(),
                        state: person.state.clone(),
                        id: auction.id,
                    });
                }
            }
        }
    }
    sorted(rows)
}

/// q4's result table: each category's average winning price.
pub(super) fn q4(events: &[Event]) -> BTreeMap<u64, u64> {
    let mut bids_of: BTreeMap<u64, Vec<&Bid>> = BTreeMap::new();
    for bid in bids(events) {
        bids_of.entry(bid.auction).or_default().push(bid);
    }
    // (sum, count) of the winning prices per category.
    let mut categories: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for event in events {
        let Event::Auction(auction) = event else {
            continue;
        };
        let winning = bids_of
            .get(&auction.id)
            .into_iter()
            .flatten()
            .filter(|bid| auction.date_time <= bid.date_time && bid.date_time <= auction.expires)
            .map(|bid| bid.price)
            .max();
        if let Some(price) = winning {
            let (sum, count) = categories.entry(auction.category).or_default();
            *sum += price;
            *count += 1;
        }
    }
    categories
        .into_iter()
        .map(|(category, (sum, count))| (category, sum / count))
        .collect()
}

pub(super) fn q5(events: &[Event]) -> Vec<HotItem> {
    // Per hop window start, the bids of each auction.
    let mut windows: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    for bid in bids(events) {
        let last_start = bid.date_time - bid.date_time % 2_000;
        for start in (0..5).filter_map(|k| last_start.checked_sub(k * 2_000)) {
            *windows
                .entry(start)
                .or_default()
                .entry(bid.auction)
                .or_default() += 1;
        }
    }
    let mut rows = Vec::new();
    for counts in windows.values() {
        let max = counts.values().copied().max().unwrap_or(0);
        for (&auction, &num) in counts {
            if num >= max {
                rows.push(HotItem { auction, num });
            }
        }
    }
    sorted(rows)
}

pub(super) fn q7(events: &[Event]) -> Vec<HighestBid> {
    // The highest price of each tumbling window, by its end.
    let mut max_by_end: BTreeMap<u64, u64> = BTreeMap::new();
    for bid in bids(events) {
        let end = bid.date_time - bid.date_time % 10_000 + 10_000;
        let max = max_by_end.entry(end).or_default();
        *max = (*max).max(bid.price);
    }
    let mut rows = Vec::new();
    for bid in bids(events) {
        // `B.dateTime BETWEEN B1.dateTime - 10 s AND B1.dateTime`, B1.dateTime a window end.
        for (_, &max) in max_by_end.range(bid.date_time..=bid.date_time + 10_000) {
            if bid.price == max {
                rows.push(HighestBid {
                    auction: bid.auction,
                    price: bid.price,
                    bidder: bid.bidder,
                    date_time: bid.date_time,
                    extra: bid.extra.clone(),
                });
            }
        }
    }
    sorted(rows)
}

pub(super) fn q8(events: &[Event]) -> Vec<NewSeller> {
    let start = |time: u64| time - time % 10_000;
    let mut people = BTreeSet::new();
    let mut sellers = BTreeSet::new();
    for event in events {
        match event {
            Event::Person(p) => {
                people.insert((start(p.date_time), p.id, p.name.clone()));
            }
            Event::Auction(a) => {
                sellers.insert((start(a.date_time), a.seller));
            }
            Event::Bid(_) => {}
        }
    }
    let rows = people
        .into_iter()
        .filter(|(start, id, _)| sellers.contains(&(*start, *id)))
        .map(|(start_time, id, name)| NewSeller {
            id,
            name,
            start_time,
        })
        .collect();
    sorted(rows)
}

pub(super) fn q11(events: &[Event]) -> Vec<Session> {
    let mut times: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for bid in bids(events) {
        times.entry(bid.bidder).or_default().push(bid.date_time);
    }
    let mut rows = Vec::new();
    for (bidder, mut times) in times {
        times.sort();
        let mut session: Option<Session> = None;
        for time in times {
            match &mut session {
                // Windows `[t, t + gap)` that touch or overlap merge.
                Some(open) if time <= open.end_time => {
                    open.bid_count += 1;
                    open.end_time = time + 10_000;
                }
                _ => {
                    rows.extend(session.take());
                    session = Some(Session {
                        bidder,
                        bid_count: 1,
                        start_time: time,
                        end_time: time + 10_000,
                    });
                }
            }
        }
        rows.extend(session);
    }
    sorted(rows)
}
