-- The bids of `tideflow bench nexmark --write-bids target/nexmark/bids.jsonl`, as the queries of
-- Flink's NEXMark suite read them (nexmark-flink/src/main/resources/queries/), dateTime in ms.
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime BIGINT, extra STRING, WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
WITH ('connector' = 'file', 'path' = 'target/nexmark/bids.jsonl', 'format' = 'jsonl');

-- q5's first step: bids per auction in 10 s windows every 2 s.
SELECT auction, window_start, window_end, COUNT(*) AS num
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
