// Offsets through the Java client: manual commits resumed by the next consumer, automatic
// commits, asynchronous commits, and seeks by offset, by time, to the beginning and the end.
package keel.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

class CommitSeekTest {
    static final int RECORDS = 100;

    /** A topic of one partition holding RECORDS records, record i stamped `start + i` seconds. */
    static TopicPartition filled(Admin admin, long start) throws Exception {
        String topic = Cluster.topic(admin, "offsets", 1);
        try (KafkaProducer<String, String> producer = Cluster.producer(Map.of())) {
            for (int i = 0; i < RECORDS; i++) {
                producer.send(new ProducerRecord<>(topic, 0, start + i * 1000L, "k" + i, "v" + i));
            }
            producer.flush();
        }
        return new TopicPartition(topic, 0);
    }

    @Test
    void manualCommitResumes() throws Exception {
        try (Admin admin = Cluster.admin()) {
            TopicPartition partition = filled(admin, System.currentTimeMillis());
            String group = Cluster.unique("manual");
            Map<String, Object> config = Map.of(ConsumerConfig.GROUP_ID_CONFIG, group,
                    ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 10);
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(config)) {
                consumer.subscribe(List.of(partition.topic()));
                Cluster.poll(consumer, 40);
                consumer.commitSync(Map.of(partition, new OffsetAndMetadata(40, "forty")));
                OffsetAndMetadata committed = consumer.committed(java.util.Set.of(partition)).get(partition);
                assertEquals(40, committed.offset());
                assertEquals("forty", committed.metadata());
            }
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(config)) {
                consumer.subscribe(List.of(partition.topic()));
                List<ConsumerRecord<String, String>> records = Cluster.poll(consumer, 1);
                assertEquals(40, records.get(0).offset(), "resumed at the commit");
            }
        }
    }

    @Test
    void autoCommitOnClose() throws Exception {
        try (Admin admin = Cluster.admin()) {
            TopicPartition partition = filled(admin, System.currentTimeMillis());
            String group = Cluster.unique("auto");
            long position;
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(Map.of(
                    ConsumerConfig.GROUP_ID_CONFIG, group,
                    ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true",
                    ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, 100,
                    ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 10))) {
                consumer.subscribe(List.of(partition.topic()));
                Cluster.poll(consumer, 30);
                position = consumer.position(partition);
            }
            Map<TopicPartition, OffsetAndMetadata> committed =
                    Cluster.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            assertEquals(position, committed.get(partition).offset(), "the position at close");
        }
    }

    @Test
    void asyncCommit() throws Exception {
        try (Admin admin = Cluster.admin()) {
            TopicPartition partition = filled(admin, System.currentTimeMillis());
            String group = Cluster.unique("async");
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(Map.of(ConsumerConfig.GROUP_ID_CONFIG, group))) {
                consumer.subscribe(List.of(partition.topic()));
                Cluster.poll(consumer, RECORDS);
                CompletableFuture<Exception> done = new CompletableFuture<>();
                consumer.commitAsync(Map.of(partition, new OffsetAndMetadata(RECORDS)),
                        (offsets, exception) -> done.complete(exception));
                long deadline = System.nanoTime() + Cluster.PATIENCE.toNanos();
                while (!done.isDone() && System.nanoTime() < deadline) {
                    consumer.poll(Duration.ofMillis(50));
                }
                assertNull(done.get(1, TimeUnit.SECONDS), "the commit's callback saw no error");
                assertEquals(RECORDS, consumer.committed(java.util.Set.of(partition)).get(partition).offset());
            }
        }
    }

    @Test
    void seekByOffsetAndTime() throws Exception {
        try (Admin admin = Cluster.admin()) {
            long start = System.currentTimeMillis() - 3_600_000;
            TopicPartition partition = filled(admin, start);
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(Map.of())) {
                consumer.assign(List.of(partition));
                consumer.seek(partition, 40);
                ConsumerRecord<String, String> first = Cluster.poll(consumer, 1).get(0);
                assertEquals(40, first.offset());
                assertEquals(start + 40_000, first.timestamp(), "the producer's timestamp");

                Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(Map.of(partition, start + 60_500));
                assertEquals(61, found.get(partition).offset(), "first record at or after the time");
                assertEquals(start + 61_000, found.get(partition).timestamp());
                assertNull(consumer.offsetsForTimes(Map.of(partition, start + 3_600_000 * 2)).get(partition),
                        "no record after the time");

                assertEquals(0L, consumer.beginningOffsets(List.of(partition)).get(partition));
                assertEquals((long) RECORDS, consumer.endOffsets(List.of(partition)).get(partition));
                consumer.seekToEnd(List.of(partition));
                assertEquals(RECORDS, consumer.position(partition));
                consumer.seekToBeginning(List.of(partition));
                assertEquals(0, consumer.position(partition));
                consumer.seek(partition, found.get(partition).offset());
                assertTrue(Cluster.poll(consumer, 1).get(0).value().equals("v61"));
            }
        }
    }
}
