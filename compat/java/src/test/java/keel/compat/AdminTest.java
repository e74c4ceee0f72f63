// The AdminClient surface: topics, partitions, configs, consumer groups and their offsets,
// deleted records, the cluster and its log directories.
package keel.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.Test;

class AdminTest {
    @Test
    void createDescribeDeleteTopics() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String name = Cluster.unique("admin");
            Cluster.get(admin.createTopics(List.of(new NewTopic(name, 3, (short) 1)
                    .configs(Map.of("retention.ms", "3600000")))).all());
            Cluster.waitFor("the new topic listed", () -> names(admin).contains(name));
            TopicDescription description = Cluster.get(admin.describeTopics(List.of(name)).allTopicNames()).get(name);
            assertEquals(3, description.partitions().size());
            assertFalse(description.isInternal());
            description.partitions().forEach(p -> assertNotNull(p.leader(), "partition " + p.partition() + " led"));

            Cluster.get(admin.deleteTopics(List.of(name)).all());
            Cluster.waitFor("the topic gone", () -> !names(admin).contains(name));
        }
    }

    @Test
    void createPartitions() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String name = Cluster.topic(admin, "grow", 2);
            Cluster.get(admin.createPartitions(Map.of(name, NewPartitions.increaseTo(5))).all());
            Cluster.waitFor("five partitions", () -> {
                try {
                    return Cluster.get(admin.describeTopics(List.of(name)).allTopicNames()).get(name).partitions().size() == 5;
                } catch (Exception e) {
                    return false;
                }
            });
            try (KafkaProducer<String, String> producer = Cluster.producer(Map.of())) {
                assertEquals(4, producer.send(new ProducerRecord<>(name, 4, "k", "v")).get().partition());
            }
        }
    }

    @Test
    void describeAndAlterConfigs() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String name = Cluster.topic(admin, "configs", 1);
            ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, name);
            // The broker's own default (Kafka's is 7 days, keel serve's none: -1), which a
            // DELETE must bring back.
            String defaultRetention = value(admin, topic, "retention.ms");
            Cluster.get(admin.incrementalAlterConfigs(Map.of(topic, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "1234567"), AlterConfigOp.OpType.SET)))).all());
            Cluster.waitFor("retention.ms set", () -> "1234567".equals(value(admin, topic, "retention.ms")));
            Config config = Cluster.get(admin.describeConfigs(List.of(topic)).all()).get(topic);
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, config.get("retention.ms").source());
            assertNotNull(config.get("cleanup.policy"), "defaults are described too");

            Cluster.get(admin.incrementalAlterConfigs(Map.of(topic, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE)))).all());
            Cluster.waitFor("retention.ms back to its default", () -> defaultRetention.equals(value(admin, topic, "retention.ms")));

            Node node = Cluster.get(admin.describeCluster().nodes()).iterator().next();
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, node.idString());
            Config brokerConfig = Cluster.get(admin.describeConfigs(List.of(broker)).all()).get(broker);
            assertFalse(brokerConfig.entries().isEmpty(), "the broker's configs");
        }
    }

    @Test
    void consumerGroups() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "groups", 2);
            String group = Cluster.unique("admin-group");
            GroupTest.produce(topic, 0, 20);
            TopicPartition zero = new TopicPartition(topic, 0);
            TopicPartition one = new TopicPartition(topic, 1);
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(Map.of(ConsumerConfig.GROUP_ID_CONFIG, group))) {
                consumer.subscribe(List.of(topic));
                Cluster.poll(consumer, 20);
                consumer.commitSync();
                Collection<GroupListing> groups = Cluster.get(admin.listGroups().all());
                assertTrue(groups.stream().anyMatch(g -> g.groupId().equals(group)), "the group listed");
                ConsumerGroupDescription description =
                        Cluster.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
                assertEquals(1, description.members().size());
                assertEquals(Set.of(zero, one), description.members().iterator().next().assignment().topicPartitions());
            }
            Map<TopicPartition, OffsetAndMetadata> committed =
                    Cluster.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            assertEquals(20, committed.get(zero).offset() + committed.get(one).offset());

            Cluster.get(admin.alterConsumerGroupOffsets(group, Map.of(zero, new OffsetAndMetadata(1))).all());
            assertEquals(1, Cluster.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()).get(zero).offset());

            Cluster.get(admin.deleteConsumerGroupOffsets(group, Set.of(one)).all());
            assertFalse(Cluster.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()).containsKey(one));

            Cluster.get(admin.deleteConsumerGroups(List.of(group)).all());
            assertTrue(Cluster.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()).isEmpty(),
                    "a deleted group has no offsets");
        }
    }

    @Test
    void deleteRecords() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "trim", 1);
            GroupTest.produce(topic, 0, 10);
            TopicPartition partition = new TopicPartition(topic, 0);
            long low = Cluster.get(admin.deleteRecords(Map.of(partition, RecordsToDelete.beforeOffset(5)))
                    .lowWatermarks().get(partition)).lowWatermark();
            assertEquals(5, low);
            try (KafkaConsumer<String, String> consumer = Cluster.consumer(Map.of())) {
                assertEquals(5L, consumer.beginningOffsets(List.of(partition)).get(partition));
                consumer.assign(List.of(partition));
                consumer.seekToBeginning(List.of(partition));
                assertEquals(5, Cluster.poll(consumer, 1).get(0).offset());
            }
        }
    }

    @Test
    void describeClusterAndLogDirs() throws Exception {
        try (Admin admin = Cluster.admin()) {
            String topic = Cluster.topic(admin, "dirs", 1);
            GroupTest.produce(topic, 0, 10);
            DescribeClusterResult cluster = admin.describeCluster();
            Collection<Node> nodes = Cluster.get(cluster.nodes());
            assertEquals(1, nodes.size());
            assertNotNull(Cluster.get(cluster.clusterId()));
            assertNotNull(Cluster.get(cluster.controller()));
            Node node = nodes.iterator().next();
            Map<String, LogDirDescription> dirs =
                    Cluster.get(admin.describeLogDirs(List.of(node.id())).allDescriptions()).get(node.id());
            assertFalse(dirs.isEmpty(), "one log directory at least");
            ReplicaInfo replica = dirs.values().stream()
                    .map(dir -> dir.replicaInfos().get(new TopicPartition(topic, 0)))
                    .filter(r -> r != null).findFirst().orElseThrow();
            assertTrue(replica.size() > 0, "the partition's size on disk");
        }
    }

    static Set<String> names(Admin admin) {
        try {
            return Cluster.get(admin.listTopics().names());
        } catch (Exception e) {
            return Set.of();
        }
    }

    static String value(Admin admin, ConfigResource resource, String key) {
        try {
            ConfigEntry entry = Cluster.get(admin.describeConfigs(List.of(resource)).all()).get(resource).get(key);
            return entry == null ? null : entry.value();
        } catch (Exception e) {
            return null;
        }
    }
}
