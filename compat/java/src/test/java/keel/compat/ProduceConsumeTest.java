// Produce and consume through the Java client: keys, headers, every compression codec, the
// idempotent producer, and the default partitioner's key → partition mapping.
package keel.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.Test;

class ProduceConsumeTest {
    static final int PARTITIONS = 3;
    static final int RECORDS = 300;

    @Test
    void uncompressed() throws Exception {
        roundTrip(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none"));
    }

    @Test
    void gzip() throws Exception {
        roundTrip(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "gzip"));
    }

    @Test
    void snappy() throws Exception {
        roundTrip(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "snappy"));
    }

    @Test
    void lz4() throws Exception {
        roundTrip(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4"));
    }

    @Test
    void zstd() throws Exception {
        roundTrip(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "zstd"));
    }

    /** Five batches in flight, retried on a lost answer: each record stored once, in order. */
    @Test
    void idempotentProducer() throws Exception {
        roundTrip(Map.of(
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5,
                ProducerConfig.LINGER_MS_CONFIG, 5,
                ProducerConfig.BATCH_SIZE_CONFIG, 512));
    }

    /** A null key goes to some partition, a null value (a tombstone) stays null. */
    @Test
    void nullKeysAndValues() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "nulls", 1);
            try (KafkaProducer<String, String> producer = Cluster.producer(Map.of())) {
                producer.send(new ProducerRecord<>(topic, null, "no key")).get();
                producer.send(new ProducerRecord<>(topic, "tombstone", null)).get();
            }
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(Map.of())) {
                consumer.assign(List.of(new TopicPartition(topic, 0)));
                List<ConsumerRecord<String, String>> records = Cluster.poll(consumer, 2);
                assertEquals(2, records.size());
                assertNull(records.get(0).key());
                assertEquals("no key", records.get(0).value());
                assertEquals("tombstone", records.get(1).key());
                assertNull(records.get(1).value());
            }
        }
    }

    /**
     * Produces keyed records with two headers each to a new topic with `producerConfig`, then
     * reads every partition from the start: each record is where the Java partitioner puts its
     * key, once, in the order sent, with its key, value and headers.
     */
    static void roundTrip(Map<String, Object> producerConfig) throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "codec", PARTITIONS);
            try (KafkaProducer<String, String> producer = Cluster.producer(producerConfig)) {
                for (int i = 0; i < RECORDS; i++) {
                    RecordHeaders headers = new RecordHeaders();
                    headers.add("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                    headers.add("bytes", new byte[] {0, (byte) 0xff, (byte) i});
                    producer.send(new ProducerRecord<>(topic, null, "key-" + (i % 50), "value-" + i, headers));
                }
                producer.flush();
            }
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(Map.of())) {
                List<TopicPartition> partitions = List.of(
                        new TopicPartition(topic, 0), new TopicPartition(topic, 1), new TopicPartition(topic, 2));
                consumer.assign(partitions);
                List<ConsumerRecord<String, String>> records = Cluster.poll(consumer, RECORDS);
                assertEquals(RECORDS, records.size(), "records consumed");
                Map<Integer, Long> nextOffset = new HashMap<>();
                Map<String, Integer> lastSeq = new HashMap<>();
                for (ConsumerRecord<String, String> record : records) {
                    int seq = Integer.parseInt(new String(record.headers().lastHeader("seq").value(), StandardCharsets.UTF_8));
                    assertEquals("key-" + (seq % 50), record.key());
                    assertEquals("value-" + seq, record.value());
                    assertArrayEquals(new byte[] {0, (byte) 0xff, (byte) seq}, record.headers().lastHeader("bytes").value());
                    int expected = Utils.toPositive(Utils.murmur2(record.key().getBytes(StandardCharsets.UTF_8))) % PARTITIONS;
                    assertEquals(expected, record.partition(), "partition of " + record.key());
                    long offset = nextOffset.getOrDefault(record.partition(), 0L);
                    assertEquals(offset, record.offset(), "offsets are dense from 0");
                    nextOffset.put(record.partition(), offset + 1);
                    Integer previous = lastSeq.put(record.key(), seq);
                    if (previous != null) {
                        assertEquals(previous + 50, seq, "one key's records in the order sent");
                    }
                }
                Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
                for (TopicPartition partition : partitions) {
                    assertEquals(nextOffset.getOrDefault(partition.partition(), 0L), ends.get(partition),
                            "nothing stored twice in " + partition);
                }
            }
        }
    }
}
