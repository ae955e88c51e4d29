"""Small Kafka client for scripts/kafka-broker.sh: create a topic, produce lines, consume."""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(brokers, topic, partitions):
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, int(partitions), 1)]).values():
        future.result()
    print(f"topic {topic} created with {partitions} partitions")


def produce(brokers, topic):
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True,
                         "allow.auto.create.topics": False})
    partitions = len(producer.list_topics(topic, timeout=10).topics[topic].partitions)
    if partitions == 0:
        sys.exit(f"kafka_client: topic {topic} does not exist: create it first")
    count = 0
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\r\n")
        if line:
            producer.produce(topic, line, partition=count % partitions)
            producer.poll(0)
            count += 1
    if producer.flush(30) != 0:
        sys.exit("kafka_client: messages not acknowledged within 30 s")
    print(f"{count} messages produced to {topic}", file=sys.stderr)


def consume(brokers, topic):
    """Prints every committed message's value, until none came for 3 seconds."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "kafka-broker.sh",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if not metadata.partitions:
        sys.exit(f"kafka_client: topic {topic} does not exist")
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    quiet_since = time.time()
    while time.time() - quiet_since < 3:
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        sys.stdout.buffer.write(message.value() + b"\n")
        quiet_since = time.time()
    consumer.close()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    try:
        {"create-topic": create_topic, "produce": produce, "consume": consume}[command](*args)
    except BrokenPipeError:
        # `consume ... | head`: the reader went away.
        sys.stderr.close()
        sys.exit(0)
