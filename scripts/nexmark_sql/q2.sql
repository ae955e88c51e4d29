-- The bids of `tideflow bench nexmark --write-bids target/nexmark/bids.jsonl`, as the queries of
-- Flink's NEXMark suite read them (nexmark-flink/src/main/resources/queries/), dateTime in ms.
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime BIGINT, extra STRING, WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
WITH ('connector' = 'file', 'path' = 'target/nexmark/bids.jsonl', 'format' = 'jsonl');

-- q2: the bids of some auctions.
SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
