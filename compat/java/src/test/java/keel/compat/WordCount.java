// A Kafka Streams word count with exactly_once_v2: lines in, one record per word's new count
// out. Its count is a state store (a compacted changelog topic) behind a repartition by word,
// so a run creates internal topics and every commit is a transaction across the repartition,
// changelog and output topics and the consumer offsets. StreamsTest runs it in the test's JVM
// and, to kill it with SIGKILL, as a child JVM through main.
package keel.compat;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

final class WordCount {
    private WordCount() {}

    /** The application reading `input` and writing to `output`, not started. */
    static KafkaStreams build(String bootstrap, String application, String input, String output,
            Path stateDir) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, org.apache.kafka.streams.kstream.Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .mapValues(String::valueOf)
                .to(output, Produced.with(Serdes.String(), Serdes.String()));
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, application);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        // A member killed with SIGKILL never leaves: its successor waits this long for it.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 10_000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1_000);
        return new KafkaStreams(builder.build(), props);
    }

    /** `bootstrap application input output state-dir`: runs until the process is killed. */
    public static void main(String[] args) throws InterruptedException {
        KafkaStreams streams = build(args[0], args[1], args[2], args[3], Path.of(args[4]));
        streams.setUncaughtExceptionHandler(e -> {
            e.printStackTrace();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        System.out.println("started");
        new CountDownLatch(1).await();
    }
}
