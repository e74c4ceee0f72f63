// A Kafka Streams application (WordCount) with processing.guarantee=exactly_once_v2 on the
// broker: its internal topics (a repartition topic and a compacted changelog) are created by
// the application, every commit is a transaction, and the output read with read_committed must
// hold every word's counts exactly — rising by one step at a time to the true count, never
// repeated — whether the application ran through or was killed with SIGKILL mid-transaction
// and restarted from its changelog.
package keel.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.streams.KafkaStreams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StreamsTest {
    static final int PARTITIONS = 3;

    @TempDir
    Path state;

    /** Line `i` of the input: three of twenty words, chosen by `i`. */
    static String line(int i) {
        return "w" + (i % 20) + " w" + (i * 7 % 20) + " w" + (i * 13 % 11);
    }

    static void produce(KafkaProducer<String, String> producer, String input, int from, int to,
            Map<String, Long> expected) {
        for (int i = from; i < to; i++) {
            producer.send(new ProducerRecord<>(input, "line-" + i, line(i)));
            for (String word : line(i).split(" ")) {
                expected.merge(word, 1L, Long::sum);
            }
        }
        producer.flush();
    }

    static KafkaConsumer<String, String> reader(String output, String isolation) {
        KafkaConsumer<String, String> consumer = Cluster.consumer(
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation));
        List<TopicPartition> partitions = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new TopicPartition(output, p));
        }
        consumer.assign(partitions);
        return consumer;
    }

    /** Every word's counts in `output` as read_committed sees them, once the last counts
     *  equal `expected`; fails at the deadline with what it saw. */
    static Map<String, List<Long>> countsReaching(String output, Map<String, Long> expected)
            throws Exception {
        Map<String, List<Long>> counts = new TreeMap<>();
        try (KafkaConsumer<String, String> consumer = reader(output, "read_committed")) {
            try {
                Cluster.waitFor("the counts of " + output + " to reach " + expected, () -> {
                    for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                        counts.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(Long.valueOf(r.value()));
                    }
                    Map<String, Long> last = new TreeMap<>();
                    counts.forEach((word, seen) -> last.put(word, seen.get(seen.size() - 1)));
                    return last.equals(new TreeMap<>(expected));
                });
            } catch (AssertionError e) {
                throw new AssertionError(e.getMessage() + "; saw " + counts, e);
            }
        }
        return counts;
    }

    /** Each word's counts rise strictly (no update repeated, none lost to a later state). */
    static void assertExactlyOnce(Map<String, List<Long>> counts, Map<String, Long> expected) {
        assertEquals(new TreeMap<>(expected).keySet(), counts.keySet());
        counts.forEach((word, seen) -> {
            for (int i = 1; i < seen.size(); i++) {
                assertTrue(seen.get(i) > seen.get(i - 1), word + " counted " + seen);
            }
            assertEquals(expected.get(word), seen.get(seen.size() - 1), word + " counted " + seen);
        });
    }

    @Test
    void wordCountWithExactlyOnceV2() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String input = Cluster.topic(admin, "wc-in", PARTITIONS);
            String output = Cluster.topic(admin, "wc-out", PARTITIONS);
            Map<String, Long> expected = new HashMap<>();
            try (KafkaProducer<String, String> producer = Cluster.producer(Map.of())) {
                produce(producer, input, 0, 500, expected);
            }
            try (KafkaStreams streams = WordCount.build(Cluster.BOOTSTRAP, Cluster.unique("wc"),
                    input, output, state)) {
                streams.start();
                assertExactlyOnce(countsReaching(output, expected), expected);
            }
        }
    }

    /** A child JVM running WordCount, its output in `log`. */
    static Process child(String application, String input, String output, Path state, File log)
            throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        return new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                "keel.compat.WordCount", Cluster.BOOTSTRAP, application, input, output,
                state.toString())
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log))
                .start();
    }

    /** Whether some partition of `output` holds records of an open transaction (its last
     *  stable offset is behind its end). */
    static boolean transactionOpen(KafkaConsumer<String, String> committed,
            KafkaConsumer<String, String> uncommitted) {
        var partitions = committed.assignment();
        Map<TopicPartition, Long> stable = committed.endOffsets(partitions);
        Map<TopicPartition, Long> end = uncommitted.endOffsets(partitions);
        return partitions.stream().anyMatch(p -> stable.get(p) < end.get(p));
    }

    @Test
    void wordCountKilledMidTransactionIsExactlyOnce() throws Exception {
        File log = state.resolve("child.log").toFile();
        try (Admin admin = Cluster.admin()) {
            String input = Cluster.topic(admin, "wck-in", PARTITIONS);
            String output = Cluster.topic(admin, "wck-out", PARTITIONS);
            String application = Cluster.unique("wck");
            Path appState = state.resolve("app");
            Map<String, Long> expected = new HashMap<>();
            AtomicBoolean feeding = new AtomicBoolean(true);
            AtomicInteger fed = new AtomicInteger();
            try (KafkaProducer<String, String> producer = Cluster.producer(Map.of())) {
                produce(producer, input, 0, 200, expected);
                fed.set(200);
                // Input keeps coming while the first run works, so it is killed inside a
                // transaction rather than idle between two.
                Map<String, Long> more = new HashMap<>();
                Thread feeder = new Thread(() -> {
                    while (feeding.get() && fed.get() < 20_000) {
                        produce(producer, input, fed.get(), fed.get() + 20, more);
                        fed.addAndGet(20);
                        try {
                            Thread.sleep(20);
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                });
                feeder.start();
                Process first = child(application, input, output, appState, log);
                try (KafkaConsumer<String, String> committed = reader(output, "read_committed");
                        KafkaConsumer<String, String> uncommitted = reader(output, "read_uncommitted")) {
                    Cluster.waitFor("a committed count and an open transaction in " + output
                            + " (child log " + log + ")", () -> first.isAlive()
                            && committed.endOffsets(committed.assignment()).values().stream()
                                    .anyMatch(o -> o > 0)
                            && transactionOpen(committed, uncommitted));
                    first.destroyForcibly().waitFor();
                }
                feeding.set(false);
                feeder.join();
                more.forEach((word, n) -> expected.merge(word, n, Long::sum));
                Process second = child(application, input, output, appState, log);
                try {
                    assertExactlyOnce(countsReaching(output, expected), expected);
                } finally {
                    second.destroyForcibly().waitFor();
                }
            }
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "\nchild log:\n" + tail(log), e);
        }
    }

    static String tail(File log) {
        try {
            List<String> lines = Files.readAllLines(log.toPath());
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 60), lines.size()));
        } catch (Exception e) {
            return "(no log: " + e + ")";
        }
    }
}
