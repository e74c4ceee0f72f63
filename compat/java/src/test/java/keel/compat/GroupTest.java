// Consumer groups through the Java client: three members sharing six partitions with the
// classic protocol and with the consumer protocol of KIP-848, every record consumed once, and
// the group's commits resumed by the next consumer.
package keel.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

class GroupTest {
    static final int PARTITIONS = 6;
    static final int RECORDS = 600;

    @Test
    void classicGroupOfThree() throws Exception {
        groupOfThree(Map.of(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic"));
    }

    @Test
    void consumerProtocolGroupOfThree() throws Exception {
        groupOfThree(Map.of(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer"));
    }

    /** One member of a group, polling on its own thread and committing after each batch. */
    static final class Member implements Runnable {
        final KafkaConsumer<String, String> consumer;
        final String topic;
        final Map<String, String> seen;
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicReference<Set<TopicPartition>> owned = new AtomicReference<>(Set.of());
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        final Thread thread = new Thread(this);

        Member(Map<String, Object> config, String topic, Map<String, String> seen) {
            this.consumer = Cluster.consumer(config);
            this.topic = topic;
            this.seen = seen;
            thread.start();
        }

        @Override
        public void run() {
            try (consumer) {
                consumer.subscribe(List.of(topic));
                while (!stop.get()) {
                    for (ConsumerRecord<String, String> record : consumer.poll(java.time.Duration.ofMillis(100))) {
                        String previous = seen.put(record.partition() + "@" + record.offset(), record.value());
                        if (previous != null) {
                            throw new AssertionError("consumed twice: " + record.partition() + "@" + record.offset());
                        }
                    }
                    consumer.commitSync();
                    owned.set(new HashSet<>(consumer.assignment()));
                }
            } catch (Throwable e) {
                failure.set(e);
            }
        }

        void close() throws InterruptedException {
            stop.set(true);
            thread.join(Cluster.PATIENCE.toMillis());
            if (failure.get() != null) {
                throw new AssertionError("member failed", failure.get());
            }
        }
    }

    /**
     * Three members join, share the six partitions, consume 600 records once between them;
     * then a new member of the same group resumes from their commits and reads only what is
     * produced after them.
     */
    static void groupOfThree(Map<String, Object> protocol) throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "group", PARTITIONS);
            String group = Cluster.unique("g");
            Map<String, Object> config = new HashMap<>(protocol);
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            config.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 50);
            Map<String, String> seen = new ConcurrentHashMap<>();
            List<Member> members = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                members.add(new Member(config, topic, seen));
            }
            Cluster.waitFor("three members owning the six partitions", () -> {
                Set<TopicPartition> all = new HashSet<>();
                int owned = 0;
                for (Member member : members) {
                    if (member.failure.get() != null) {
                        throw new AssertionError("a member failed", member.failure.get());
                    }
                    if (member.owned.get().isEmpty()) {
                        return false;
                    }
                    owned += member.owned.get().size();
                    all.addAll(member.owned.get());
                }
                return owned == PARTITIONS && all.size() == PARTITIONS;
            });
            produce(topic, 0, RECORDS);
            Cluster.waitFor("600 records consumed", () -> seen.size() >= RECORDS);
            for (Member member : members) {
                member.close();
            }
            assertEquals(RECORDS, seen.size(), "every record consumed once");
            assertEquals(RECORDS, new HashSet<>(seen.values()).size(), "every value once");

            Map<TopicPartition, OffsetAndMetadata> committed =
                    Cluster.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            long total = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
            assertEquals(RECORDS, total, "the group committed every partition's end");

            produce(topic, RECORDS, 60);
            Map<String, String> resumed = new ConcurrentHashMap<>();
            Member next = new Member(config, topic, resumed);
            Cluster.waitFor("the 60 new records", () -> resumed.size() >= 60 || next.failure.get() != null);
            next.close();
            assertEquals(60, resumed.size());
            assertTrue(resumed.values().stream().allMatch(v -> Integer.parseInt(v.substring(6)) >= RECORDS),
                    "only records produced after the commits: " + resumed.values());
        }
    }

    static void produce(String topic, int from, int count) {
        try (KafkaProducer<String, String> producer = Cluster.producer(Map.of())) {
            for (int i = from; i < from + count; i++) {
                producer.send(new ProducerRecord<>(topic, "key-" + i, "value-" + i));
            }
            producer.flush();
        }
    }
}
