-- The bids of `tideflow bench nexmark --write-bids target/nexmark/bids.jsonl`, as the queries of
-- Flink's NEXMark suite read them (nexmark-flink/src/main/resources/queries/), dateTime in ms.
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime BIGINT, extra STRING, WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
WITH ('connector' = 'file', 'path' = 'target/nexmark/bids.jsonl', 'format' = 'jsonl');

-- q11: bids per bidder per session (10 s gap).
SELECT bidder, COUNT(*) AS bid_count, window_start AS starttime, window_end AS endtime
FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end;
