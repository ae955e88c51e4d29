//! The oracle checked against hand-computed cases, and the engine at the boundaries.

use super::*;

// ---------------------------------------------------------------------------------------------
// The oracle checked by hand
// ---------------------------------------------------------------------------------------------

fn spans(expected: &Expected) -> Vec<(u64, u64, u64, usize)> {
    let mut spans: Vec<_> = expected
        .windows
        .iter()
        .map(|w| (w.key, w.start, w.end, w.records.len()))
        .collect();
    spans.sort_unstable();
    spans
}

/// The oracle itself on inputs small enough to work out by hand.
#[test]
fn oracle_agrees_with_hand_computed_cases() {
    assert_eq!(
        aligned_windows_of(700, 1_000, 300),
        vec![(0, 1_000), (300, 1_300), (600, 1_600)]
    );
    assert_eq!(aligned_windows_of(5, 1_000, 300), vec![(0, 1_000)]);
    assert_eq!(
        aligned_windows_of(12_500, 10_000, 5_000),
        vec![(5_000, 15_000), (10_000, 20_000)]
    );
    assert_eq!(
        aligned_windows_of(1_999, 1_000, 1_000),
        vec![(1_000, 2_000)]
    );

    // Partition rule: records 0 and 2 are partition 0, record 1 is partition 1.
    let stamps: Vec<u64> = stamp_all(&[ev(0, 1_000, 0), ev(0, 10, 0), ev(0, 850, 0)], 2, 100)
        .iter()
        .map(|r| r.stamp)
        .collect();
    assert_eq!(stamps, vec![1_000, 10, 900]);

    // Sessions merge when they touch.
    let events: Vec<Ev> = [0, 4_000, 9_000, 20_000]
        .into_iter()
        .map(|t| ev(1, t, 1))
        .collect();
    let expected = oracle(
        &stamp_all(&events, 1, 100_000),
        Spec::Session { gap: 5_000 },
    );
    assert_eq!(
        spans(&expected),
        vec![(1, 0, 14_000, 3), (1, 20_000, 25_000, 1)]
    );

    // Tumbling lateness: 950 arrives stamped 1_900 >= 1_000: late.
    let events = [ev(0, 1_000, 1), ev(0, 2_000, 2), ev(0, 950, 3)];
    let expected = oracle(&stamp_all(&events, 1, 100), Spec::Tumbling { size: 1_000 });
    assert_eq!(
        spans(&expected),
        vec![(0, 1_000, 2_000, 1), (0, 2_000, 3_000, 1)]
    );
    assert_eq!(expected.late, 1);
}

/// Hand-computed cases at the edges of the rules, through the oracle and the engine.
#[test]
fn engine_and_oracle_agree_with_hand_computed_boundaries() {
    let tumbling = Spec::Tumbling { size: 1_000 };
    let sliding = Spec::Sliding {
        size: 1_000,
        slide: 300,
    };
    let session = Spec::Session { gap: 300 };
    // (window, delay, event times of key 0 in partition order, (start, end, count) rows, late)
    type Case = (Spec, u64, Vec<u64>, Vec<(u64, u64, u64)>, u64);
    let cases: Vec<Case> = vec![
        // 999 stamped 1_000 (1_100 - 100): exactly at the end of [0, 1_000), late.
        (tumbling, 100, vec![1_100, 999], vec![(1_000, 2_000, 1)], 1),
        // 999 stamped 999: on time.
        (
            tumbling,
            100,
            vec![1_099, 999],
            vec![(0, 1_000, 1), (1_000, 2_000, 1)],
            0,
        ),
        // 950 is in [0, 1_000), [300, 1_300), [600, 1_600), [900, 1_900); stamped 1_900 it is
        // late for all of them.
        (
            sliding,
            100,
            vec![2_000, 950],
            vec![(1_200, 2_200, 1), (1_500, 2_500, 1), (1_800, 2_800, 1)],
            1,
        ),
        // Stamped 1_899 it still makes [900, 1_900), and only that one.
        (
            sliding,
            100,
            vec![1_999, 950],
            vec![
                (900, 1_900, 1),
                (1_200, 2_200, 1),
                (1_500, 2_500, 1),
                (1_800, 2_800, 1),
            ],
            0,
        ),
        // Near the epoch, windows that would start before 0 are left out.
        (
            sliding,
            0,
            vec![5, 700],
            vec![(0, 1_000, 2), (300, 1_300, 1), (600, 1_600, 1)],
            0,
        ),
        // 1_000 stamped 1_300 = 1_000 + gap: late.
        (session, 100, vec![1_400, 1_000], vec![(1_400, 1_700, 1)], 1),
        // 1_000 stamped 1_299: on time; applied first, [1_000, 1_300) closes before stamp 1_399.
        (
            session,
            100,
            vec![1_399, 1_000],
            vec![(1_000, 1_300, 1), (1_399, 1_699, 1)],
            0,
        ),
        // A session ending exactly where the next one starts is extended (they touch).
        (session, 0, vec![1_000, 1_300], vec![(1_000, 1_600, 2)], 0),
        // 1_250 is stamped 1_400, not late (< 1_550), but [1_000, 1_300) closed before 1_400: it
        // starts a new session, which 1_500 joins.
        (
            session,
            100,
            vec![1_000, 1_500, 1_250],
            vec![(1_000, 1_300, 1), (1_250, 1_800, 2)],
            0,
        ),
        // A session ending exactly at the next stamp is still open: 1_700 (stamped 1_900) opens
        // [1_700, 2_000), which 2_000 (stamped 2_000) extends; 1_250 (stamped 1_900) is late.
        (
            session,
            100,
            vec![1_000, 2_000, 1_700, 1_250],
            vec![(1_000, 1_300, 1), (1_700, 2_300, 2)],
            1,
        ),
    ];
    for (case, (spec, delay, times, want, want_late)) in cases.into_iter().enumerate() {
        let events: Vec<Ev> = times.iter().map(|&t| ev(0, t, 1)).collect();
        let expected = oracle(&stamp_all(&events, 1, delay), spec);
        let oracle_rows: Vec<(u64, u64, u64)> = spans(&expected)
            .into_iter()
            .map(|(_, s, e, n)| (s, e, n as u64))
            .collect();
        assert_eq!(
            oracle_rows, want,
            "oracle, hand case {case} window={spec:?} delay={delay}ms times={times:?}"
        );
        assert_eq!(
            expected.late, want_late,
            "oracle late, hand case {case} window={spec:?} delay={delay}ms"
        );
        let events = Arc::new(events);
        for workers in WORKERS {
            let context = format!("hand case {case} window={spec:?} workers={workers} partitions=1 delay={delay}ms times={times:?}");
            let (rows, report) = run_windowed(&events, 1, delay, spec, workers, || Count);
            let mut got: Vec<(u64, u64, u64)> =
                rows.iter().map(|r| (r.start, r.end, r.value)).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{context}");
            assert_eq!(report.late_dropped, want_late, "{context}: late_dropped");
        }
    }
}
