// Command franzgo runs the basic checks of a Kafka client against one broker with franz-go
// (github.com/twmb/franz-go), the Go client: records with keys and headers, a consumer group
// of three members, and a group's commits resumed by its next member. The same checks run in
// KafkaJS (compat/js) and against both keel serve and Apache Kafka
// (crates/keel-kafka/tests/go_and_js_clients.rs), so a difference between the brokers shows.
//
// It prints one JSON object: each check's failure (null when it passed) and, per API key the
// broker advertises, the version franz-go would use there (the highest both support), for
// docs/kafka-compatibility.md's matrix.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// checkTimeout bounds each check: a broker that stops answering fails the check instead of
// hanging the suite.
const checkTimeout = 90 * time.Second

type checks struct {
	bootstrap string
	prefix    string
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "the broker's host:port")
	prefix := flag.String("prefix", "franzgo", "prefix of the topics and groups the checks create")
	flag.Parse()
	c := checks{bootstrap: *bootstrap, prefix: *prefix}

	outcomes := map[string]*string{}
	for _, check := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"ProduceWithHeaders", c.produceWithHeaders},
		{"GroupOfThree", c.groupOfThree},
		{"CommitsResumed", c.commitsResumed},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		if err := check.run(ctx); err != nil {
			message := err.Error()
			outcomes[check.name] = &message
		} else {
			outcomes[check.name] = nil
		}
		cancel()
	}
	usable, err := c.usableVersions()
	if err != nil {
		fmt.Fprintln(os.Stderr, "api versions:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"tests": outcomes, "usable": usable}); err != nil {
		os.Exit(1)
	}
}

func (c checks) client(options ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.bootstrap)}, options...)...)
}

// createTopic makes a fresh topic named for this run.
func (c checks) createTopic(ctx context.Context, suffix string, partitions int32) (string, error) {
	topic := c.prefix + "." + suffix
	client, err := c.client()
	if err != nil {
		return "", err
	}
	defer client.Close()
	created, err := kadm.NewClient(client).CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = created.Err
	}
	return topic, err
}

func header(record *kgo.Record, key string) string {
	for _, h := range record.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// produceWithHeaders: 30 records with keys and two headers come back as sent, every key in
// one partition, in the order sent there.
func (c checks) produceWithHeaders(ctx context.Context) error {
	topic, err := c.createTopic(ctx, "headers", 3)
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	producer, err := c.client(kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer producer.Close()
	const count = 30
	for i := 0; i < count; i++ {
		record := &kgo.Record{
			Key:   []byte("key-" + strconv.Itoa(i%5)),
			Value: []byte("value-" + strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{
				{Key: "trace", Value: []byte("trace-" + strconv.Itoa(i))},
				{Key: "empty", Value: nil},
			},
		}
		if err := producer.ProduceSync(ctx, record).FirstErr(); err != nil {
			return fmt.Errorf("produce %d: %w", i, err)
		}
	}
	consumer, err := c.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer consumer.Close()
	partitionOf := map[string]int32{}
	lastOf := map[string]int{}
	for seen := 0; seen < count; {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consumed %d of %d: %w", seen, count, err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("fetch: %v", errs[0].Err)
		}
		for _, record := range fetches.Records() {
			seen++
			i, err := strconv.Atoi(string(record.Value)[len("value-"):])
			if err != nil {
				return fmt.Errorf("unexpected value %q", record.Value)
			}
			key := string(record.Key)
			if key != "key-"+strconv.Itoa(i%5) || header(record, "trace") != "trace-"+strconv.Itoa(i) {
				return fmt.Errorf("record %d came back with key %q and trace %q", i, key, header(record, "trace"))
			}
			if len(record.Headers) != 2 || record.Headers[1].Key != "empty" || len(record.Headers[1].Value) != 0 {
				return fmt.Errorf("record %d came back with headers %v", i, record.Headers)
			}
			if p, ok := partitionOf[key]; ok && p != record.Partition {
				return fmt.Errorf("key %s in partitions %d and %d", key, p, record.Partition)
			}
			partitionOf[key] = record.Partition
			if last, ok := lastOf[key]; ok && last > i {
				return fmt.Errorf("key %s: record %d after record %d", key, i, last)
			}
			lastOf[key] = i
		}
	}
	return nil
}

// groupOfThree: three members of one group share six partitions (two each, once the group is
// stable), then 300 records are handled once each across them.
func (c checks) groupOfThree(ctx context.Context) error {
	topic, err := c.createTopic(ctx, "group", 6)
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	group := c.prefix + ".group-of-three"
	var mu sync.Mutex
	assigned := make([]int, 3)
	handled := map[string]int{}
	members := make([]*kgo.Client, 3)
	for m := range members {
		m := m
		member, err := c.client(
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, added map[string][]int32) {
				mu.Lock()
				assigned[m] += len(added[topic])
				mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
				mu.Lock()
				assigned[m] -= len(lost[topic])
				mu.Unlock()
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
				mu.Lock()
				assigned[m] -= len(lost[topic])
				mu.Unlock()
			}),
		)
		if err != nil {
			return err
		}
		defer member.Close()
		members[m] = member
	}
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	var polling sync.WaitGroup
	for _, member := range members {
		member := member
		polling.Add(1)
		go func() {
			defer polling.Done()
			for pollCtx.Err() == nil {
				fetches := member.PollFetches(pollCtx)
				mu.Lock()
				for _, record := range fetches.Records() {
					handled[string(record.Value)]++
				}
				mu.Unlock()
				if err := member.CommitUncommittedOffsets(pollCtx); err != nil && pollCtx.Err() == nil {
					// A commit refused by a rebalance is retried by the next poll's commit.
					continue
				}
			}
		}()
	}
	stable := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return assigned[0] == 2 && assigned[1] == 2 && assigned[2] == 2
	}
	for !stable() {
		if ctx.Err() != nil {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Errorf("partitions per member never became 2, 2, 2: %v", assigned)
		}
		time.Sleep(50 * time.Millisecond)
	}
	producer, err := c.client(kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer producer.Close()
	const count = 300
	records := make([]*kgo.Record, count)
	for i := range records {
		records[i] = &kgo.Record{Key: []byte("key-" + strconv.Itoa(i%30)), Value: []byte("value-" + strconv.Itoa(i))}
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	for {
		mu.Lock()
		done := len(handled) == count
		mu.Unlock()
		if done {
			break
		}
		if ctx.Err() != nil {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Errorf("handled %d of %d", len(handled), count)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopPolling()
	polling.Wait()
	for value, times := range handled {
		if times != 1 {
			return fmt.Errorf("%s handled %d times by a stable group", value, times)
		}
	}
	return nil
}

// commitsResumed: a member commits after the 10th of 20 records and leaves; the group's next
// member starts at the 11th.
func (c checks) commitsResumed(ctx context.Context) error {
	topic, err := c.createTopic(ctx, "commits", 1)
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	group := c.prefix + ".commits"
	producer, err := c.client(kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer producer.Close()
	const count = 20
	for i := 0; i < count; i++ {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			return fmt.Errorf("produce %d: %w", i, err)
		}
	}
	member := func() (*kgo.Client, error) {
		return c.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	}
	first, err := member()
	if err != nil {
		return err
	}
	var tenth *kgo.Record
	for tenth == nil {
		fetches := first.PollFetches(ctx)
		if ctx.Err() != nil {
			first.Close()
			return fmt.Errorf("the first member read nothing: %w", ctx.Err())
		}
		for _, record := range fetches.Records() {
			if record.Offset == 9 {
				tenth = record
			}
		}
	}
	if err := first.CommitRecords(ctx, tenth); err != nil {
		first.Close()
		return fmt.Errorf("commit: %w", err)
	}
	first.Close()

	admin, err := c.client()
	if err != nil {
		return err
	}
	defer admin.Close()
	committed, err := kadm.NewClient(admin).FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("fetch offsets: %w", err)
	}
	if offset, ok := committed.Lookup(topic, 0); !ok || offset.At != 10 {
		return fmt.Errorf("committed offset %v (found %v), not 10", offset.At, ok)
	}

	next, err := member()
	if err != nil {
		return err
	}
	defer next.Close()
	want := int64(10)
	for want < count {
		fetches := next.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("the next member read up to offset %d: %w", want, ctx.Err())
		}
		for _, record := range fetches.Records() {
			if record.Offset != want || string(record.Value) != strconv.FormatInt(want, 10) {
				return fmt.Errorf("the next member read offset %d (%q), expected %d", record.Offset, record.Value, want)
			}
			want++
		}
	}
	return nil
}

// usableVersions names, for each API key the broker advertises, the highest version both the
// broker and franz-go support ("-" when their ranges do not meet), keyed "Name(key)".
func (c checks) usableVersions() (map[string]string, error) {
	client, err := c.client()
	if err != nil {
		return nil, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	request := kmsg.NewPtrApiVersionsRequest()
	request.ClientSoftwareName = "franz-go"
	request.ClientSoftwareVersion = "compat"
	response, err := request.RequestWith(ctx, client)
	if err != nil {
		return nil, err
	}
	if response.ErrorCode != 0 {
		return nil, fmt.Errorf("ApiVersions error code %d", response.ErrorCode)
	}
	ours := kversion.Stable()
	usable := map[string]string{}
	for _, key := range response.ApiKeys {
		name := fmt.Sprintf("%s(%d)", kmsg.NameForKey(key.ApiKey), key.ApiKey)
		max, known := ours.LookupMaxKeyVersion(key.ApiKey)
		if max > key.MaxVersion {
			max = key.MaxVersion
		}
		if !known || max < key.MinVersion {
			usable[name] = "-"
			continue
		}
		usable[name] = strconv.Itoa(int(max))
	}
	return usable, nil
}
