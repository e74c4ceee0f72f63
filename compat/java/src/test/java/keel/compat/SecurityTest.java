// The AdminClient's security surface over SASL/SCRAM-SHA-512 as a super user: ACLs (create,
// describe, delete) and SCRAM users (upsert, describe, delete). Runs only when
// -Dkafka.sasl.username and -Dkafka.sasl.password are given (the plain suite skips it).
package keel.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialDeletion;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.junit.jupiter.api.Test;

class SecurityTest {
    private static final String USER = System.getProperty("kafka.sasl.username", "");
    private static final String PASSWORD = System.getProperty("kafka.sasl.password", "");

    private static Admin admin() {
        assumeTrue(!USER.isEmpty(), "no -Dkafka.sasl.username: not a SASL listener");
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, Cluster.BOOTSTRAP);
        props.put("security.protocol", "SASL_PLAINTEXT");
        props.put("sasl.mechanism", "SCRAM-SHA-512");
        props.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required"
                + " username=\"" + USER + "\" password=\"" + PASSWORD + "\";");
        return Admin.create(props);
    }

    @Test
    void createDescribeAndDeleteAcls() throws Exception {
        try (Admin admin = admin()) {
            String topic = Cluster.unique("secured");
            String principal = "User:" + Cluster.unique("reader");
            List<AclBinding> bindings = List.of(
                    new AclBinding(new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
                            new AccessControlEntry(principal, "*", AclOperation.READ, AclPermissionType.ALLOW)),
                    new AclBinding(new ResourcePattern(ResourceType.GROUP, topic + ".", PatternType.PREFIXED),
                            new AccessControlEntry(principal, "*", AclOperation.READ, AclPermissionType.ALLOW)),
                    new AclBinding(new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
                            new AccessControlEntry(principal, "*", AclOperation.WRITE, AclPermissionType.DENY)));
            Cluster.get(admin.createAcls(bindings).all());
            AclBindingFilter mine = new AclBindingFilter(ResourcePatternFilter.ANY,
                    new AccessControlEntryFilter(principal, null, AclOperation.ANY, AclPermissionType.ANY));
            Collection<AclBinding> described = Cluster.get(admin.describeAcls(mine).values());
            assertEquals(texts(bindings), texts(described));
            AclBindingFilter onTopic = new AclBindingFilter(
                    new ResourcePatternFilter(ResourceType.TOPIC, topic, PatternType.MATCH),
                    new AccessControlEntryFilter(principal, null, AclOperation.ANY, AclPermissionType.ANY));
            assertEquals(2, Cluster.get(admin.describeAcls(onTopic).values()).size());
            Collection<AclBinding> deleted = Cluster.get(admin.deleteAcls(List.of(mine)).all());
            assertEquals(3, deleted.size());
            assertTrue(Cluster.get(admin.describeAcls(mine).values()).isEmpty());
        }
    }

    @Test
    void upsertDescribeAndDeleteScramUsers() throws Exception {
        try (Admin admin = admin()) {
            String user = Cluster.unique("scram");
            ScramCredentialInfo info = new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192);
            Cluster.get(admin.alterUserScramCredentials(
                    List.of(new UserScramCredentialUpsertion(user, info, "a password"))).all());
            Map<String, UserScramCredentialsDescription> described =
                    Cluster.get(admin.describeUserScramCredentials(List.of(user)).all());
            assertEquals(List.of(info), described.get(user).credentialInfos());
            assertTrue(Cluster.get(admin.describeUserScramCredentials().users()).contains(user));
            Cluster.get(admin.alterUserScramCredentials(
                    List.of(new UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512))).all());
            assertFalse(Cluster.get(admin.describeUserScramCredentials().users()).contains(user));
        }
    }

    /** Bindings compared as sets: brokers list them in their own order. */
    private static Set<String> texts(Collection<AclBinding> bindings) {
        Set<String> set = new TreeSet<>();
        bindings.forEach(b -> set.add(b.toString()));
        return set;
    }
}
