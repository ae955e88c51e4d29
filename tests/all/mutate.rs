//! Mutations of valid inputs for the fuzz tests (`fuzz_*` in the decoders' and the snapshot
//! reader's unit tests, which include this file by path): bit flips, truncations, insertions
//! of bytes that matter to the formats (quotes, commas, newlines, braces, invalid UTF-8) and
//! deletions, as a proptest strategy; and the bounded proptest configuration they all run
//! under, so that `cargo test` runs them in seconds.

// Each including crate uses some of these.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;

/// One change to a byte string. Positions are taken modulo the length, so any mutation
/// applies to any input.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flips bit `bit` of the byte at `at`.
    Flip { at: usize, bit: u8 },
    /// Cuts the input at `at`.
    Truncate { at: usize },
    /// Inserts `bytes` before `at`.
    Insert { at: usize, bytes: Vec<u8> },
    /// Removes up to `len` bytes from `at`.
    Delete { at: usize, len: usize },
}

/// A byte that matters to JSON lines or CSV, or any byte.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(vec![
            b'"', b',', b'\n', b'\r', b'{', b'}', b'[', b']', b':', b'\\', b' ', b'0', b'9', b'-',
            b'e', b'.', 0x00, 0xc3, 0xff, 0x80
        ]),
        any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (
            any::<usize>(),
            prop::collection::vec(interesting_byte(), 1..4)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..8).prop_map(|(at, len)| Mutation::Delete { at, len }),
    ]
}

/// One to four mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..5)
}

/// Arbitrary bytes, biased towards the formats' special bytes.
pub fn arbitrary_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(interesting_byte(), 0..max)
}

/// `bytes` with `mutations` applied in order.
pub fn mutate(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    for mutation in mutations {
        match mutation {
            Mutation::Flip { at, bit } => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] ^= 1 << bit;
                }
            }
            Mutation::Truncate { at } => bytes.truncate(at % (bytes.len() + 1)),
            Mutation::Insert { at, bytes: new } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Delete { at, len } => {
                let at = at % (bytes.len() + 1);
                let end = (at + len).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

/// `cases` cases, no regression files, no forking: bounded, so that a debug `cargo test` on a
/// busy machine runs each fuzz target in about a second. `TIDEFLOW_FUZZ_CASES=N` runs `N`
/// cases instead, for a longer search.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("TIDEFLOW_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
