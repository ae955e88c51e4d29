//! The Kafka source and sink against a real broker (tests/all/kafka_broker.rs).

mod sink;

use std::time::Duration;

mod source;

use crate::kafka_broker::Broker;

/// The harness itself: a topic created, records produced and read back.
#[test]
fn broker_round_trip() {
    let broker = Broker::start();
    broker.create_topic("smoke", 2);
    broker.produce(
        "smoke",
        &[
            (0, Some(b"k"), b"zero", Some(5)),
            (1, None, b"one", None),
            (0, None, b"two", None),
        ],
    );
    let read = broker.read_committed("smoke", Duration::from_millis(1500));
    let values: Vec<(i32, i64, &[u8])> = read
        .iter()
        .map(|c| (c.partition, c.offset, c.value.as_slice()))
        .collect();
    assert_eq!(
        values,
        vec![
            (0, 0, &b"zero"[..]),
            (0, 1, &b"two"[..]),
            (1, 0, &b"one"[..])
        ]
    );
    assert_eq!(read[0].key.as_deref(), Some(&b"k"[..]));
}
