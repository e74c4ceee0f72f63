// Transactions through the Java client: commit and abort seen by read_committed and
// read_uncommitted consumers, fencing by a second producer with the same transactional.id, and
// the consume-transform-produce loop (sendOffsetsToTransaction) stopped mid-transaction and
// restarted, whose output must hold every input exactly once.
package keel.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.Test;

class TransactionTest {
    static KafkaProducer<String, String> transactional(String id) {
        KafkaProducer<String, String> producer = Cluster.producer(Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, id,
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60_000));
        producer.initTransactions();
        return producer;
    }

    static KafkaConsumer<String, String> reader(String isolation) {
        return Cluster.consumer(Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation));
    }

    /** The values a consumer of `isolation` reads from partition 0 until it reaches its end. */
    static List<String> values(String topic, String isolation) throws Exception {
        TopicPartition partition = new TopicPartition(topic, 0);
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = reader(isolation)) {
            consumer.assign(List.of(partition));
            long end = consumer.endOffsets(List.of(partition)).get(partition);
            Cluster.waitFor("the end of " + topic + " (" + isolation + ")", () -> {
                consumer.poll(Duration.ofMillis(200)).forEach(r -> values.add(r.value()));
                return consumer.position(partition) >= end;
            });
        }
        return values;
    }

    @Test
    void committedAndAbortedTransactions() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "txn", 1);
            try (KafkaProducer<String, String> producer = transactional(Cluster.unique("txn"))) {
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(topic, "k", "a1"));
                producer.send(new ProducerRecord<>(topic, "k", "a2"));
                producer.commitTransaction();
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(topic, "k", "b1")).get();
                producer.abortTransaction();
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(topic, "k", "c1"));
                producer.commitTransaction();
            }
            assertEquals(List.of("a1", "a2", "c1"), values(topic, "read_committed"));
            assertEquals(List.of("a1", "a2", "b1", "c1"), values(topic, "read_uncommitted"));
        }
    }

    /** An open transaction holds read_committed consumers back until it ends. */
    @Test
    void readCommittedWaitsForAnOpenTransaction() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "txn-open", 1);
            TopicPartition partition = new TopicPartition(topic, 0);
            try (KafkaProducer<String, String> producer = transactional(Cluster.unique("txn"));
                    KafkaConsumer<String, String> consumer = reader("read_committed")) {
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(topic, "k", "pending")).get();
                consumer.assign(List.of(partition));
                assertEquals(0L, consumer.endOffsets(List.of(partition)).get(partition),
                        "the last stable offset stays before the open transaction");
                assertTrue(consumer.poll(Duration.ofSeconds(1)).isEmpty());
                producer.commitTransaction();
                List<ConsumerRecord<String, String>> records = Cluster.poll(consumer, 1);
                assertEquals("pending", records.get(0).value());
            }
        }
    }

    @Test
    void aSecondProducerFencesTheFirst() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "txn-fence", 1);
            String id = Cluster.unique("fenced");
            KafkaProducer<String, String> first = transactional(id);
            first.beginTransaction();
            first.send(new ProducerRecord<>(topic, "k", "zombie")).get();
            try (KafkaProducer<String, String> second = transactional(id)) {
                KafkaException thrown = assertThrows(KafkaException.class, first::commitTransaction);
                assertTrue(thrown instanceof ProducerFencedException
                        || thrown instanceof InvalidProducerEpochException
                        || thrown.getCause() instanceof ProducerFencedException,
                        "fenced, not " + thrown);
                first.close(Duration.ZERO);
                second.beginTransaction();
                second.send(new ProducerRecord<>(topic, "k", "successor"));
                second.commitTransaction();
            }
            assertEquals(List.of("successor"), values(topic, "read_committed"));
        }
    }

    /**
     * Reads `input` as `group` and writes each value upper-cased to `output`, ten records a
     * transaction with the read offsets in it; after `transactions` commits it starts one more,
     * writes and sends its offsets, and closes the producer without committing — a crash.
     * Runs to the end of the input when `transactions` is negative.
     */
    static void transform(String input, String output, String group, String id, int transactions)
            throws Exception {
        TopicPartition partition = new TopicPartition(input, 0);
        KafkaProducer<String, String> producer = transactional(id);
        try (KafkaConsumer<String, String> consumer = Cluster.consumer(Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, group,
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 10))) {
            consumer.assign(List.of(partition));
            long end = consumer.endOffsets(List.of(partition)).get(partition);
            int committed = 0;
            long deadline = System.nanoTime() + Cluster.PATIENCE.toNanos();
            while (consumer.position(partition) < end && System.nanoTime() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                producer.beginTransaction();
                for (ConsumerRecord<String, String> record : records) {
                    producer.send(new ProducerRecord<>(output, record.key(), record.value().toUpperCase()));
                }
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                offsets.put(partition, new OffsetAndMetadata(consumer.position(partition)));
                producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                if (committed == transactions) {
                    producer.flush();
                    producer.close(Duration.ZERO);
                    return;
                }
                producer.commitTransaction();
                committed++;
            }
        }
        producer.close();
    }

    @Test
    void consumeTransformProduceStoppedMidTransactionIsExactlyOnce() throws Exception {
        int count = 100;
        try (Admin admin = Cluster.admin()) {
            String input = Cluster.topic(admin, "ctp-in", 1);
            String output = Cluster.topic(admin, "ctp-out", 1);
            List<String> expected = new ArrayList<>();
            try (KafkaProducer<String, String> producer = Cluster.producer(Map.of())) {
                for (int i = 0; i < count; i++) {
                    producer.send(new ProducerRecord<>(input, "k", "event-" + i));
                    expected.add("EVENT-" + i);
                }
            }
            String group = Cluster.unique("ctp");
            String id = Cluster.unique("ctp");
            transform(input, output, group, id, 3);
            transform(input, output, group, id, -1);
            assertEquals(expected, values(output, "read_committed"));
            assertTrue(values(output, "read_uncommitted").size() > count,
                    "the stopped transaction's records are in the log, aborted");
        }
    }
}
